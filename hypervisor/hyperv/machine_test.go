package hyperv

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// stubDriver answers Status from a script of states, for the machine's
// own logic (no PowerShell).
type stubDriver struct {
	mu       sync.Mutex
	statuses []VMStatus // taken in order; the last repeats
	errs     int        // Status fails this many times first
	removed  int
	sent     bool
}

func (d *stubDriver) Verify(context.Context) error            { return nil }
func (d *stubDriver) Version(context.Context) (string, error) { return "stub", nil }
func (d *stubDriver) Upload(context.Context, string, string, io.Reader, int64) (Upload, error) {
	return Upload{}, nil
}
func (d *stubDriver) OpenCOM(context.Context, string, int) (io.ReadWriteCloser, error) {
	return nil, nil
}
func (d *stubDriver) DialGuest(context.Context, string, int) (io.ReadWriteCloser, error) {
	return nil, errors.New("no")
}
func (d *stubDriver) Start(context.Context, VMConfig) (VMStatus, error) { return VMStatus{}, nil }
func (d *stubDriver) Status(context.Context, string) (VMStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.errs > 0 {
		d.errs--
		return VMStatus{}, errors.New("WinRM is tired")
	}
	s := d.statuses[0]
	if len(d.statuses) > 1 {
		d.statuses = d.statuses[1:]
	}
	return s, nil
}
func (d *stubDriver) PowerButton(context.Context, string) (bool, error) { return d.sent, nil }
func (d *stubDriver) TurnOff(context.Context, string) error             { return nil }
func (d *stubDriver) Remove(context.Context, string, bool) error {
	d.mu.Lock()
	d.removed++
	d.mu.Unlock()
	return nil
}

func stubMachine(d *stubDriver) *machine {
	m := &machine{
		b: &Backend{Driver: d}, name: "kitrun-stub-00000000", start: time.Now(),
		events: make(chan hypervisor.BackendEvent, 64), done: make(chan struct{}),
		wake: make(chan struct{}, 1), conEnded: make(chan struct{}),
	}
	return m
}

func TestMachineEnds(t *testing.T) {
	defer func(d time.Duration) { pollInterval = d }(pollInterval)
	pollInterval = 10 * time.Millisecond
	running := VMStatus{Found: true, State: "Running"}
	for _, c := range []struct {
		name    string
		d       *stubDriver
		wantErr string // "" means a clean power-off
	}{
		{"powered off", &stubDriver{statuses: []VMStatus{running, running, {Found: true, State: "Off"}}}, ""},
		{"destroyed", &stubDriver{statuses: []VMStatus{running, {Found: true, State: "Off", Notes: "kitrun: destroyed"}}}, "destroyed"},
		{"removed", &stubDriver{statuses: []VMStatus{running, {Found: false}}}, "removed by someone else"},
		{"host lost", &stubDriver{errs: 100, statuses: []VMStatus{running}}, "lost the VM: WinRM is tired"},
		{"host back", &stubDriver{errs: 3, statuses: []VMStatus{{Found: true, State: "Off"}}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := stubMachine(c.d)
			go m.watch()
			select {
			case <-m.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the machine did not end")
			}
			err := m.Err()
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("Err = %v, want %q", err, c.wantErr)
			}
			if c.d.removed != 1 {
				t.Errorf("removed %d times", c.d.removed)
			}
			var last hypervisor.BackendEvent
			for e := range m.Events() {
				last = e
			}
			if last.Kind != hypervisor.EvExited {
				t.Errorf("last event %+v", last)
			}
			if err := m.PowerButton(context.Background()); !errors.Is(err, hypervisor.ErrExited) {
				t.Errorf("PowerButton after the end: %v", err)
			}
			if err := m.ForceOff(context.Background()); err != nil {
				t.Errorf("ForceOff after the end: %v", err)
			}
		})
	}
}

// TestMachineForceOff: a VM turned off by ForceOff did not power itself
// off.
func TestMachineForceOff(t *testing.T) {
	defer func(d time.Duration) { pollInterval = d }(pollInterval)
	pollInterval = time.Hour // only ForceOff's poke wakes the watcher
	d := &stubDriver{statuses: []VMStatus{{Found: true, State: "Off"}}}
	m := stubMachine(d)
	go m.watch()
	if err := m.ForceOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("Err = %v", err)
	}
}

// TestMachineStopping: once the console has ended, a VM still Stopping is
// asked again soon, not at the next regular poll.
func TestMachineStopping(t *testing.T) {
	defer func(d time.Duration) { pollInterval = d }(pollInterval)
	pollInterval = time.Hour
	stopping := VMStatus{Found: true, State: "Stopping"}
	d := &stubDriver{statuses: []VMStatus{stopping, stopping, stopping, {Found: true, State: "Off"}}}
	m := stubMachine(d)
	m.consoleEnded()
	start := time.Now()
	go m.watch()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the machine did not end")
	}
	if err := m.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}
