// Package hypervisor is the boundary between kitrun and whatever runs its
// virtual machines. A Backend starts Machines from a Config; a Machine streams
// what the guest reports, takes commands, and is torn down. Backends (QEMU
// today; Hyper-V and cloud platforms later) live in subpackages and own every
// detail of their command lines, sockets and processes.
package hypervisor

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
)

// Backend starts virtual machines.
type Backend interface {
	Name() string
	Start(ctx context.Context, cfg Config) (Machine, error)
}

// Config is everything a backend needs to boot a kernel and initramfs.
type Config struct {
	Arch    arch.Arch
	Machine string // machine type; "" is the arch's default
	// Accel is "auto", "kvm" or "tcg". Backends resolve auto by probing.
	Accel     string
	MemoryMiB int
	CPUs      int
	Kernel    string // host path
	Initrd    string // host path
	// Cmdline is the image's own kernel command line; the backend appends
	// what its wiring needs (console, event channel).
	Cmdline string
	// Network gives the guest a NIC with user-mode networking.
	Network bool
	Publish []PortForward
	// Console receives every byte the guest writes on its console.
	// It may be nil.
	Console io.Writer
	// NoEventChannel keeps kitinit's event channel off (the device stays,
	// unused). The host then sees no guest events: this exists to measure
	// what the channel itself costs the boot.
	NoEventChannel bool
	// RuntimeDir holds the machine's sockets; a private temporary directory
	// (removed at teardown) when empty.
	RuntimeDir string
}

// PortForward forwards a host port to a guest TCP port.
type PortForward struct {
	HostAddr  string // always a loopback address unless the user says otherwise
	HostPort  int
	GuestPort int
}

// String renders the forward the way users write it.
func (p PortForward) String() string {
	return fmt.Sprintf("%s:%d->%d", p.HostAddr, p.HostPort, p.GuestPort)
}

// ParsePortForward reads "HOSTPORT:GUESTPORT", "ADDR:HOSTPORT:GUESTPORT" or
// "PORT" (same on both sides). The host side binds 127.0.0.1 unless an
// address is given, so that nothing is exposed by default.
func ParsePortForward(s string) (PortForward, error) {
	parts := strings.Split(s, ":")
	pf := PortForward{HostAddr: "127.0.0.1"}
	var hostPort, guestPort string
	switch len(parts) {
	case 1:
		hostPort, guestPort = parts[0], parts[0]
	case 2:
		hostPort, guestPort = parts[0], parts[1]
	case 3:
		pf.HostAddr, hostPort, guestPort = parts[0], parts[1], parts[2]
	default:
		return pf, fmt.Errorf("bad port forward %q; use HOSTPORT:GUESTPORT or ADDR:HOSTPORT:GUESTPORT", s)
	}
	var err error
	if pf.HostPort, err = parsePort(hostPort, true); err != nil {
		return pf, fmt.Errorf("bad port forward %q: host port: %v", s, err)
	}
	if pf.GuestPort, err = parsePort(guestPort, false); err != nil {
		return pf, fmt.Errorf("bad port forward %q: guest port: %v", s, err)
	}
	return pf, nil
}

func parsePort(s string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// Event is something the machine reported, stamped with the host's
// monotonic time since the hypervisor process was started. Guest events carry
// the guest's own uptime too; the two clocks are never compared directly.
type Event struct {
	Host  time.Duration
	Guest *initproto.Event // nil for hypervisor-side events
	// Kind is set for hypervisor-side events.
	Kind   string
	Detail string
}

// Hypervisor-side event kinds.
const (
	EvVMMReady     = "vmm-ready"     // the monitor greeted us
	EvKernelStart  = "kernel-start"  // first console byte
	EvGuestPanic   = "guest-panic"   // pvpanic, or a panic line on the console
	EvPowerdown    = "powerdown"     // the host asked for a power-off
	EvExited       = "exited"        // the hypervisor process ended (Detail: status)
	EvChannelError = "channel-error" // an unparsable line on the event channel
)

// Name returns the stage name of the event, guest or host side.
func (e Event) Name() string {
	if e.Guest != nil {
		if e.Guest.Name != "" {
			return e.Guest.Kind + " " + e.Guest.Name
		}
		return e.Guest.Kind
	}
	return e.Kind
}

// Machine is one running virtual machine.
type Machine interface {
	// Events delivers host-stamped events until the machine has exited; then
	// it is closed. It must be drained.
	Events() <-chan Event
	// Send writes a command to kitinit over the event channel.
	Send(ctx context.Context, cmd string) error
	// Powerdown asks the guest to power off (ACPI power button).
	Powerdown(ctx context.Context) error
	// Stop tears the machine down: a graceful power-off request, a grace
	// period, then harder means until the process is gone. It returns every
	// error met on the way. Calling it on an exited machine is a no-op.
	Stop(ctx context.Context, grace time.Duration) error
	// Kill ends the machine at once.
	Kill() error
	// Done is closed when the hypervisor process has exited.
	Done() <-chan struct{}
	// Err is the process's exit error after Done (nil for a clean exit).
	Err() error
	// Info says what was actually started.
	Info() Info
}

// Info describes a started machine.
type Info struct {
	Backend string
	Arch    string
	Machine string
	Accel   string // what was really used, never "auto"
	// AccelReason says why auto chose it.
	AccelReason string
	PID         int
	Version     string // hypervisor version
	Started     time.Time
	Publish     []PortForward
	Command     []string
}

// Controller is what a Machine may offer beyond Machine; callers
// type-assert for it. The QEMU backend implements it.
type Controller interface {
	// Pause stops the virtual CPUs; Resume restarts them.
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// RunState is the hypervisor's run state ("running", "paused", …).
	RunState(ctx context.Context) (string, error)
	// WriteConsole sends input to the guest console.
	WriteConsole(ctx context.Context, p []byte) (int, error)
}
