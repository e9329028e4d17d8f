// Package hypervisor is the boundary between kitrun and whatever runs its
// virtual machines: a local QEMU process today, Hyper-V and cloud platforms
// next. Everything above it (hypervisor/vm, the benchmarks, the test
// harness, the lifecycle commands) is written against these interfaces
// only.
//
// A Backend starts a Machine from a Spec, says which Platform its guests
// see (an input of the image build: modules, console, channel, network),
// and can end a machine from its ID alone, from another process. A Machine
// gives byte streams — the guest console and kitinit's channel, or the
// console alone where the channel shares it — power operations, network
// endpoints and an ID that outlives the kitrun process that started it.
//
// A backend knows nothing of kitinit's protocol: hypervisor/vm reads the
// streams, decodes events, names the stages, runs the stop ladder and types
// the failures, once for every backend. A backend reports only what it
// alone can see (BackendEvent: its monitor came up, a paravirtual panic
// device fired, the machine exited).
package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/platform"
)

// Backend starts and ends virtual machines on one kind of hypervisor.
type Backend interface {
	// Name is the backend's registry name ("qemu").
	Name() string
	// Verify checks that the backend can run guests of arch here (its
	// programs are installed, its API answers), with what to do if not.
	Verify(ctx context.Context, a arch.Arch) error
	// Version is the hypervisor's version for guests of arch a.
	Version(ctx context.Context, a arch.Arch) (string, error)
	// Platform is what guests of arch a see on this backend; images are
	// built for it.
	Platform(a arch.Arch) (platform.Platform, error)
	// Start boots a machine. It returns once the machine runs; the guest
	// boots on.
	Start(ctx context.Context, spec Spec) (Machine, error)
	// Destroy ends the machine with this ID (Machine.ID) if it still
	// runs, from any process; a machine already gone is not an error.
	Destroy(ctx context.Context, id string) error
	// Alive says whether the machine with this ID still runs.
	Alive(ctx context.Context, id string) (bool, error)
}

// Spec is what a machine is started with.
type Spec struct {
	Image *image.Image
	// Format is the image format to boot: "" (or "kernel+initrd") for
	// direct kernel boot, else a disk format (boot/disk) built into the
	// image directory.
	Format string
	Resources
	// Publish makes guest TCP ports reachable from the host
	// (Machine.Endpoint).
	Publish []PortForward
	// Seed is a newc cpio archive of files the guest gets at this boot
	// only (per-boot SSH keys); the backend delivers it as it can, over
	// the image's own files. Empty: none.
	Seed []byte
	// ExtraCmdline is appended to the image's kernel command line. Only a
	// direct kernel boot can take it: a disk image carries its own.
	ExtraCmdline string
	// NoChannel keeps kitinit's event channel off: the guest then reports
	// nothing. It exists to measure what the channel costs.
	NoChannel bool
	// RuntimeDir is where the backend may keep sockets and per-boot files;
	// a private directory of its own when empty.
	RuntimeDir string
	// RestoreFrom, when set, is a directory a Snapshotter's SaveState
	// wrote for a spec with the same SnapshotKey: the machine starts from
	// that saved state instead of booting (EvRestoreStart, EvRestored, or
	// EvRestoreFailed), and Seed must be empty (a restored guest gets its
	// per-run state from the host after the restore, not at boot).
	RestoreFrom string
}

// Snapshotter is what a Backend that can save a running machine's state
// and start machines from it offers; callers type-assert for it.
type Snapshotter interface {
	// SnapshotKey identifies everything a saved state of spec's machine
	// depends on: image, guest-visible devices, memory, CPUs, arch,
	// hypervisor binary and version. A state saved under another key is
	// not valid for spec. Per-run settings the guest does not see
	// (published ports, runtime paths, Seed) are not part of it. An
	// *UnsupportedError says spec cannot be snapshotted here.
	SnapshotKey(ctx context.Context, spec Spec) (string, error)
	// SaveState pauses m, which the backend started from spec, and writes
	// its state into the existing directory dir. m stays paused; the
	// caller ends it.
	SaveState(ctx context.Context, m Machine, dir string) error
}

// Machine is one running virtual machine.
type Machine interface {
	// Info says what was started; Info().ID names the machine for
	// Backend.Destroy and Backend.Alive, from this process or another.
	Info() Info
	// Console is the guest's console: what it writes, live or fetched
	// after the fact, until EOF when the machine is gone; what is written
	// goes to the guest's console input, where the backend has one. It is
	// read by one reader.
	Console() io.ReadWriter
	// Channel is kitinit's event channel: events from the guest, commands
	// to it. It is nil when the channel shares the console (the
	// platform's hardware says so) or is off.
	Channel() io.ReadWriter
	// Events delivers the backend's own observations until the machine
	// has exited; then it is closed. Each is delivered; a consumer must
	// drain it.
	Events() <-chan BackendEvent
	// PowerButton presses the virtual power button (ACPI).
	PowerButton(ctx context.Context) error
	// ForceOff ends the machine now, by the backend's hardest means, and
	// returns once it is gone (or ctx ends).
	ForceOff(ctx context.Context) error
	// Endpoint is the address ("host:port") where the host reaches a
	// published guest TCP port.
	Endpoint(guestPort int) (string, error)
	// Done is closed once the machine is gone; its streams then reach EOF
	// once what it wrote has been read.
	Done() <-chan struct{}
	// Err is how the machine ended, after Done: nil when the guest
	// powered itself off.
	Err() error
}

// Info describes a started machine.
type Info struct {
	Backend string
	// ID names the machine for as long as it exists: a PID and its start
	// time for QEMU, a VM name for Hyper-V, an instance ID in a cloud.
	ID      string
	Arch    string
	Machine string
	// Accel is what was really used, never "auto"; AccelReason says why
	// auto chose it.
	Accel       string
	AccelReason string
	// Format is the image format booted ("" for direct kernel boot).
	Format  string
	Version string // the hypervisor's version
	// Started is when the machine was started: the origin of every host
	// time stamp (Event.Host).
	Started time.Time
	// Published are the forwards actually set up, host ports chosen.
	Published []PortForward
	// Process is the local process that runs the machine, for backends
	// that run one (nil otherwise).
	Process *Process
}

// Process describes a local hypervisor process.
type Process struct {
	PID int
	// Start is the process's start time in clock ticks since the host
	// booted (/proc/PID/stat field 22): a PID is only believed with it.
	Start   uint64
	Command []string
}

// BackendEvent is something only the backend can see.
type BackendEvent struct {
	// Host is the host's time since Info.Started.
	Host   time.Duration
	Kind   string
	Detail string
}

// Backend event kinds.
const (
	// EvVMMReady: the hypervisor's monitor greeted kitrun.
	EvVMMReady = "vmm-ready"
	// EvGuestPanic: the guest kernel reported a panic through a
	// paravirtual device (pvpanic), which no guest program can fake.
	EvGuestPanic = "guest-panic"
	// EvPowerdown: the power button was pressed.
	EvPowerdown = "powerdown"
	// EvGuestShutdown: the guest itself powered the machine off
	// (Detail: "poweroff") or reset it (Detail: "reset"), as the
	// hypervisor saw it; a sign that does not depend on the guest's
	// console flushing its last lines (s390x's SCLP console does not).
	EvGuestShutdown = "guest-shutdown"
	// EvExited: the machine is gone (Detail: how).
	EvExited = "exited"
	// EvAPIAccepted: a cloud platform accepted the request that starts
	// the machine (its instance exists, pending).
	EvAPIAccepted = "api-accepted"
	// EvRunning: the platform says the machine runs (a cloud instance's
	// "running" state; Detail: its address).
	EvRunning = "running"
	// EvCleanupFailed: the machine is gone but the backend could not
	// delete everything it created for it (Detail: what is left, for a
	// sweep).
	EvCleanupFailed = "cleanup-failed"
	// EvRestoreStart: the hypervisor began loading a saved state
	// (Spec.RestoreFrom); EvRestored: it finished and the guest runs;
	// EvRestoreFailed: it could not (Detail: why), and the machine is
	// being stopped.
	EvRestoreStart  = "restore-start"
	EvRestored      = "restored"
	EvRestoreFailed = "restore-failed"
)

// CleanupError is a machine's Err when the machine ended but the backend
// could not delete everything it created for it (a cloud instance, its
// security group): what is left is named, for `kitrun cloud sweep`. Ended
// is how the machine itself ended (nil: the guest powered off).
type CleanupError struct {
	Backend string
	Left    []string
	Err     error
	Ended   error
}

func (e *CleanupError) Error() string {
	how := "the guest powered off"
	if e.Ended != nil {
		how = e.Ended.Error()
	}
	return fmt.Sprintf("%s, but the %s backend could not delete %s (left for `kitrun cloud sweep --backend %s`): %v",
		how, e.Backend, strings.Join(e.Left, ", "), e.Backend, e.Err)
}

func (e *CleanupError) Unwrap() []error {
	if e.Ended != nil {
		return []error{e.Err, e.Ended}
	}
	return []error{e.Err}
}

// Controller is what a Machine may offer beyond Machine; callers
// type-assert for it. The QEMU backend implements it.
type Controller interface {
	// Pause stops the virtual CPUs; Resume restarts them.
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// RunState is the hypervisor's run state ("running", "paused", …).
	RunState(ctx context.Context) (string, error)
}

// DiskBooter is what a Backend whose machines boot disk images only (no
// kernel directly: Hyper-V, clouds) offers; callers type-assert for it.
// Commands boot its format when none is asked for.
type DiskBooter interface {
	// DefaultFormat is the disk format (boot/disk) its machines boot.
	DefaultFormat() string
}

// HostMemory is the host memory a machine costs, as its backend measures
// it.
type HostMemory struct {
	// RSS and PSS of the hypervisor process (PSS: shared pages split among
	// their users); zero where the backend cannot tell.
	RSS, PSS int64
	// GuestResident is the part of the guest's RAM actually backed by host
	// memory.
	GuestResident int64
	// Overhead is what the hypervisor costs beyond the guest memory it
	// backs: PSS − GuestResident.
	Overhead int64
	// Parts of the overhead's resident memory, where the backend can tell
	// (zero otherwise): CodeCache is a JIT's translated code (QEMU's TCG
	// translation buffer), Files the hypervisor's file-backed pages (its
	// binary, libraries and the files it maps, such as the kernel: page
	// cache that other processes mapping the same files share).
	CodeCache, Files int64
}

// MemoryReporter is what a Machine whose backend can measure its host
// memory offers; callers type-assert for it.
type MemoryReporter interface {
	HostMemory(ctx context.Context) (HostMemory, error)
}

// ErrExited is returned by operations on a machine that is gone.
var ErrExited = errors.New("the machine has exited")

// UnsupportedError says a backend cannot do something a spec asks for.
type UnsupportedError struct {
	Backend string
	What    string
	Hint    string
}

func (e *UnsupportedError) Error() string {
	s := fmt.Sprintf("the %s backend cannot %s", e.Backend, e.What)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}
