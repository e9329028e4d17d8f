package qemu

import (
	"context"
	"errors"

	"github.com/kitrun/kitrun/hypervisor"
)

var _ hypervisor.Controller = (*machine)(nil)

// Pause implements hypervisor.Controller: QMP stop.
func (m *machine) Pause(ctx context.Context) error {
	_, err := m.runQMP(ctx, "stop", nil)
	return err
}

// Resume implements hypervisor.Controller: QMP cont.
func (m *machine) Resume(ctx context.Context) error {
	_, err := m.runQMP(ctx, "cont", nil)
	return err
}

// WriteConsole implements hypervisor.Controller: the bytes go to the
// guest's console UART through kitrun's end of the console socketpair. The
// socket is blocking (no write deadline): a write that overruns ctx is
// abandoned and finishes, or fails, when the guest reads or QEMU exits.
func (m *machine) WriteConsole(ctx context.Context, p []byte) (int, error) {
	if m.exited() {
		return 0, errors.New("machine has exited")
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	b := append([]byte(nil), p...)
	go func() {
		n, err := m.consoleIn.Write(b)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
