package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/kitrun/kitrun/hypervisor"
)

// monitorDeadline bounds finding and greeting QMP: QEMU creates the socket
// before it runs the guest, so this is only ever reached when QEMU failed.
const monitorDeadline = 15 * time.Second

// connectMonitor dials QMP once the socket exists, closes m.monReady (made
// with the machine, so that a QMP call right after Start waits for it
// instead of finding no monitor), emits vmm-ready at the
// greeting, and forwards the events that matter. go-qemu's event channel is
// unbuffered and must be drained, so this goroutine drains it until QEMU
// closes the socket.
func (m *machine) connectMonitor(network, addr string) {
	defer close(m.monDone)
	mon, err := m.dialMonitor(network, addr)
	m.mu.Lock()
	m.mon, m.monErr = mon, err
	close(m.monReady)
	m.mu.Unlock()
	if err != nil {
		return
	}
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvVMMReady, Detail: mon.Version.String()})
	events, err := mon.Events(context.Background())
	if err != nil {
		return
	}
	for ev := range events {
		switch ev.Event {
		case "GUEST_PANICKED":
			m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvGuestPanic, Detail: "pvpanic: " + fmt.Sprint(ev.Data)})
		case "POWERDOWN":
			m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvPowerdown})
		case "SHUTDOWN":
			if d := guestShutdown(ev.Data); d != "" {
				m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvGuestShutdown, Detail: d})
			}
		}
	}
}

func (m *machine) dialMonitor(network, path string) (*qmp.SocketMonitor, error) {
	deadline := time.Now().Add(monitorDeadline)
	for network == "unix" {
		if m.exited() {
			return nil, errors.New("qemu exited before its monitor came up")
		}
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("qmp socket %s did not appear within %s", path, monitorDeadline)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// QEMU binds the socket a moment before it listens on it: a dial in
	// between is refused, so retry until the deadline. Over TCP (Windows)
	// there is no file to wait for and Windows's refusal is no
	// ECONNREFUSED: every dial error is retried.
	var mon *qmp.SocketMonitor
	for {
		var err error
		mon, err = qmp.NewSocketMonitor(network, path, time.Until(deadline))
		if err == nil {
			break
		}
		if m.exited() || time.Now().After(deadline) || (network == "unix" && !errors.Is(err, syscall.ECONNREFUSED)) {
			return nil, fmt.Errorf("dial qmp: %w", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Connect reads the greeting with no deadline of its own; QEMU's exit
	// closes the socket, which ends it.
	if err := withDeadline(context.Background(), time.Until(deadline), mon.Connect); err != nil {
		mon.Disconnect()
		return nil, fmt.Errorf("qmp handshake: %w", err)
	}
	return mon, nil
}

// monitor waits for QMP to be usable.
func (m *machine) monitor(ctx context.Context) (*qmp.SocketMonitor, error) {
	m.mu.Lock()
	ready := m.monReady
	m.mu.Unlock()
	if ready == nil {
		return nil, errors.New("qmp not started")
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for qmp: %w", ctx.Err())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mon, m.monErr
}

// runQMP runs one command under ctx's deadline. go-qemu has no I/O
// deadlines; a call that overruns is abandoned (its goroutine ends when
// QEMU's exit closes the socket).
func (m *machine) runQMP(ctx context.Context, command string, args any) ([]byte, error) {
	mon, err := m.monitor(ctx)
	if err != nil {
		return nil, err
	}
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = withDeadline(ctx, 0, func() error {
		var err error
		out, err = mon.Run(b)
		return err
	})
	return out, err
}

func (m *machine) closeMonitor() {
	m.mu.Lock()
	mon := m.mon
	m.mu.Unlock()
	if mon != nil {
		mon.Disconnect()
	}
}

// RunState implements hypervisor.Controller: QEMU's run state ("running",
// "paused", ...).
func (m *machine) RunState(ctx context.Context) (string, error) {
	out, err := m.runQMP(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var resp struct {
		Return struct {
			Status string `json:"status"`
		} `json:"return"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return "", err
	}
	return resp.Return.Status, nil
}

// withDeadline runs f, giving up when ctx ends or d (if non-zero) passes.
func withDeadline(ctx context.Context, d time.Duration, f func() error) error {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// guestShutdown is the EvGuestShutdown detail of a QMP SHUTDOWN event's
// data, or "" when the guest did not cause it (a QMP quit, a signal).
// With -no-reboot a guest's reset ends QEMU with reason guest-reset.
func guestShutdown(data map[string]any) string {
	switch data["reason"] {
	case "guest-shutdown":
		return "poweroff"
	case "guest-reset":
		return "reset"
	}
	return ""
}
