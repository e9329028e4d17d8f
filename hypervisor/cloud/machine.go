package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// Machine is the half of a cloud machine that is the same on every cloud:
// its events (and the rule that none is sent after Events is closed), the
// console that follows it, the wait for "running", the power button and
// force-off bookkeeping, published ports at the machine's own address, and
// the end: last console read, teardown of what was made for it (what is
// left becomes a hypervisor.CleanupError), Exited, Done. A backend's
// machine embeds it and adds the calls to its platform.
type Machine struct {
	backend string // "aws": error prefixes, CleanupError.Backend
	noun    string // "instance", "VM": what the platform calls it

	console *ConsoleStream
	events  chan hypervisor.BackendEvent
	done    chan struct{}
	running chan struct{}
	runOnce sync.Once

	mu      sync.Mutex
	info    hypervisor.Info
	publish []hypervisor.PortForward
	addr    string
	err     error
	pressed bool   // the power button was pressed
	forced  string // why the host ended the machine ("" if it did not)

	evMu     sync.Mutex // held while sending and closing events
	evClosed bool
}

// NewMachine makes the shared half of a machine of backend (its name) on a
// platform that calls its machines noun, described by info.
func NewMachine(backend, noun string, info hypervisor.Info) *Machine {
	return &Machine{backend: backend, noun: noun, info: info,
		events: make(chan hypervisor.BackendEvent, 64), done: make(chan struct{}), running: make(chan struct{})}
}

// Emit delivers an event (the consumer drains Events, as the boundary
// requires); none after Events is closed.
func (m *Machine) Emit(kind, detail string) {
	m.mu.Lock()
	started := m.info.Started
	m.mu.Unlock()
	ev := hypervisor.BackendEvent{Host: time.Since(started), Kind: kind, Detail: detail}
	m.evMu.Lock()
	defer m.evMu.Unlock()
	if !m.evClosed {
		m.events <- ev
	}
}

// MarkStarted records the moment of the platform's create call: every
// stage is timed from it.
func (m *Machine) MarkStarted() {
	m.mu.Lock()
	m.info.Started = time.Now()
	m.mu.Unlock()
}

// Accepted records the machine's ID once the platform has taken the
// create call, and says so (EvAPIAccepted).
func (m *Machine) Accepted(id string) {
	m.mu.Lock()
	m.info.ID = id
	m.mu.Unlock()
	m.Emit(hypervisor.EvAPIAccepted, id)
}

// ID is the machine's platform ID ("" until the platform took it).
func (m *Machine) ID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info.ID
}

// Follow reads the machine's serial console through s (PollConsole or
// PollStream); Console returns it.
func (m *Machine) Follow(s *ConsoleStream) { m.console = s }

// Following says whether a console is followed yet.
func (m *Machine) Following() bool { return m.console != nil }

// Publish records guest ports reached at the machine's own address.
func (m *Machine) Publish(guestPorts ...int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range guestPorts {
		m.publish = append(m.publish, hypervisor.PortForward{HostPort: p, GuestPort: p})
	}
}

// SetAddr records the machine's address (published ports are reached
// there).
func (m *Machine) SetAddr(addr string) {
	m.mu.Lock()
	m.addr = addr
	m.mu.Unlock()
}

// Addr is the machine's address ("" while unknown).
func (m *Machine) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// Running says the platform runs the machine (EvRunning with its
// address); only the first call counts.
func (m *Machine) Running() {
	m.runOnce.Do(func() {
		m.Emit(hypervisor.EvRunning, m.Addr())
		close(m.running)
	})
}

// WaitRunning waits (at most within) for Running. When it does not come
// it calls abandon, which ends the machine, and returns why.
func (m *Machine) WaitRunning(ctx context.Context, within time.Duration, abandon func() error) error {
	t := time.NewTimer(within)
	defer t.Stop()
	id := m.ID()
	select {
	case <-m.running:
		return nil
	case <-m.done:
		return fmt.Errorf("%s: %s %s ended before it ran: %v", m.backend, m.noun, id, m.Err())
	case <-ctx.Done():
		return errors.Join(fmt.Errorf("%s: waiting for %s %s to run: %w", m.backend, m.noun, id, ctx.Err()), abandon())
	case <-t.C:
		return errors.Join(fmt.Errorf("%s: %s %s not running %s after its creation", m.backend, m.noun, id, within), abandon())
	}
}

// Abandon ends a machine that Start will not return: nobody reads its
// events, so they are drained; forceOff is the machine's ForceOff.
func (m *Machine) Abandon(forceOff func(context.Context) error) error {
	go func() {
		for range m.events {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := forceOff(ctx); err != nil {
		return fmt.Errorf("%w; it is left for `kitrun cloud sweep --backend %s`", err, m.backend)
	}
	var ce *hypervisor.CleanupError
	if errors.As(m.Err(), &ce) {
		return ce
	}
	return nil
}

// Force records why the host ends the machine; keep leaves an earlier
// reason in place.
func (m *Machine) Force(why string, keep bool) {
	m.mu.Lock()
	if m.forced == "" || !keep {
		m.forced = why
	}
	m.mu.Unlock()
}

// Forced is why the host ended the machine ("" if it did not).
func (m *Machine) Forced() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.forced
}

// Pressed says whether the power button was pressed.
func (m *Machine) Pressed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pressed
}

// Press is the shared start of PowerButton: hypervisor.ErrExited once the
// machine is gone, else it records the press and says so (EvPowerdown);
// the backend then asks its platform.
func (m *Machine) Press() error {
	if m.gone() {
		return hypervisor.ErrExited
	}
	m.mu.Lock()
	m.pressed = true
	m.mu.Unlock()
	m.Emit(hypervisor.EvPowerdown, "")
	return nil
}

// ForceOffWith is ForceOff: kill asks the platform to end the machine at
// once (what names the call in errors), then it waits until the machine
// is gone and torn down.
func (m *Machine) ForceOffWith(ctx context.Context, what string, kill func(context.Context) error) error {
	if m.gone() {
		return nil
	}
	m.Force("forced off", true)
	if err := kill(ctx); err != nil {
		return fmt.Errorf("%s: %s %s: %w", m.backend, what, m.ID(), err)
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %s %s going, not yet gone: %w", m.backend, m.noun, m.ID(), ctx.Err())
	}
}

// Teardown collects what ending a machine could not delete.
type Teardown struct {
	left []string
	errs *multierror.Error
}

// Add records a failed step: what names the resources it leaves behind.
func (t *Teardown) Add(err error, what ...string) {
	if err == nil {
		return
	}
	t.left = append(t.left, what...)
	t.errs = multierror.Append(t.errs, err)
}

// End ends the machine: it reads the last of the console, runs teardown
// (which deletes what is left of the machine), and reports how it ended:
// ended is the backend's verdict on the end itself (nil: the guest powered
// off), reason the platform's words for it. What teardown could not
// delete makes the machine's error a hypervisor.CleanupError.
func (m *Machine) End(reason string, ended error, teardown func(*Teardown)) {
	if m.console != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		m.console.Finish(fctx)
		cancel()
	}
	var t Teardown
	teardown(&t)
	if err := t.errs.ErrorOrNil(); err != nil {
		ce := &hypervisor.CleanupError{Backend: m.backend, Left: t.left, Err: err, Ended: ended}
		ended = ce
		m.Emit(hypervisor.EvCleanupFailed, strings.Join(t.left, ", ")+": "+err.Error())
	}
	m.mu.Lock()
	m.err = ended
	m.mu.Unlock()
	detail := reason
	if ended != nil {
		detail = ended.Error()
	}
	m.Emit(hypervisor.EvExited, detail)
	close(m.done)
	m.evMu.Lock()
	m.evClosed = true
	close(m.events)
	m.evMu.Unlock()
}

// Info implements hypervisor.Machine.
func (m *Machine) Info() hypervisor.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.info
	info.Published = nil
	for _, p := range m.publish {
		p.HostAddr = m.addr
		info.Published = append(info.Published, p)
	}
	return info
}

// Console implements hypervisor.Machine: the serial console as the
// platform shows it (read-only).
func (m *Machine) Console() io.ReadWriter {
	if m.console == nil {
		return nil
	}
	return m.console
}

// Channel implements hypervisor.Machine: clouds have no kitinit channel
// beside the console.
func (m *Machine) Channel() io.ReadWriter                 { return nil }
func (m *Machine) Events() <-chan hypervisor.BackendEvent { return m.events }
func (m *Machine) Done() <-chan struct{}                  { return m.done }

// Err implements hypervisor.Machine.
func (m *Machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *Machine) gone() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Endpoint implements hypervisor.Machine: the machine's address, on the
// guest's own port.
func (m *Machine) Endpoint(guestPort int) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.publish {
		if p.GuestPort == guestPort {
			if m.addr == "" {
				return "", fmt.Errorf("%s: %s %s has no address yet", m.backend, m.noun, m.info.ID)
			}
			return net.JoinHostPort(m.addr, strconv.Itoa(guestPort)), nil
		}
	}
	return "", fmt.Errorf("guest port %d is not published", guestPort)
}

// ImageUsers counts this process's live machines per image, so that the
// last one to end deletes an image that is not kept.
type ImageUsers struct {
	mu sync.Mutex
	n  map[string]int
}

// Use adds d users to image and returns how many it has now.
func (u *ImageUsers) Use(image string, d int) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n == nil {
		u.n = map[string]int{}
	}
	u.n[image] += d
	n := u.n[image]
	if n <= 0 {
		delete(u.n, image)
	}
	return n
}

// DiskRules are what a cloud boots, for CheckSpec.
type DiskRules struct {
	// Format is the one disk format the platform boots; FormatHint says
	// how to build and boot it, for the refusal of any other.
	Format, FormatHint string
	// Carrier is what carries the kernel command line on the platform
	// ("an AMI"), for the refusal of extra kernel arguments.
	Carrier string
	// SeedSource and SeedLimit are CheckSeed's source and limit.
	SeedSource string
	SeedLimit  int
}

// DiskBoot is what CheckSpec found in a spec: the machine type it asks for
// (the platform's default if none), and the image's disk in the format.
type DiskBoot struct {
	Machine string
	// Path is the disk's file, Disk its entry in the image's manifest.
	Path string
	Disk image.Disk
}

// CheckSpec makes the checks of a spec that every cloud makes before
// calling its platform: an image, a machine type the platform has, the
// platform's disk format (clouds boot disks, which carry their kernel
// command line: no direct kernel boot, no extra kernel arguments), a disk
// wired for the machine type, and a seed the disk can fetch (CheckSeed).
func CheckSpec(b hypervisor.Backend, spec hypervisor.Spec, r DiskRules) (DiskBoot, error) {
	name := b.Name()
	img := spec.Image
	if img == nil {
		return DiskBoot{}, fmt.Errorf("%s: no image to boot", name)
	}
	plat, err := b.Platform(img.Arch)
	if err != nil {
		return DiskBoot{}, err
	}
	res := spec.Resources.WithDefaults()
	machine, _, err := plat.Machine(res.Machine)
	if err != nil {
		return DiskBoot{}, err
	}
	if spec.Format != r.Format {
		f := spec.Format
		if f == "" || f == image.FormatDirect {
			f = "direct kernel boot"
		} else {
			f = "the " + f + " format"
		}
		return DiskBoot{}, &hypervisor.UnsupportedError{Backend: name, What: "boot " + f, Hint: r.FormatHint}
	}
	if spec.ExtraCmdline != "" {
		return DiskBoot{}, fmt.Errorf("%s: %s carries its kernel command line; extra kernel arguments need direct kernel boot", name, r.Carrier)
	}
	path, err := img.Disk(r.Format)
	if err != nil {
		return DiskBoot{}, err
	}
	d := img.Manifest.Disks[r.Format]
	if d.Machine != "" && d.Machine != machine {
		return DiskBoot{}, fmt.Errorf("%s: the %s image of %s is wired for machine %s, not %s", name, r.Format, img.Manifest.Name, d.Machine, machine)
	}
	if err := CheckSeed(name, spec.Seed, d.Cmdline, r.SeedSource, r.SeedLimit); err != nil {
		return DiskBoot{}, err
	}
	return DiskBoot{Machine: machine, Path: path, Disk: d}, nil
}

// CheckPublish refuses to map a guest port to another port: a cloud
// machine's ports are reached at its own address, on the same port.
// whose names the machine's ports ("an instance's").
func CheckPublish(backend, whose string, publish []hypervisor.PortForward) error {
	for _, p := range publish {
		if p.HostPort != 0 && p.HostPort != p.GuestPort {
			return &hypervisor.UnsupportedError{Backend: backend, What: fmt.Sprintf("map guest port %d to port %d", p.GuestPort, p.HostPort),
				Hint: whose + " ports are reached at its own address, on the same port: publish PORT or 0:PORT"}
		}
	}
	return nil
}

// CheckSeed says whether a machine can get this boot's seed (per-boot
// files: SSH keys) from the platform's metadata service: the image's disk
// must have been built to fetch it from source (its kernel command line,
// cmdline, names it; an image without network does not), and the platform
// takes at most limit bytes.
func CheckSeed(backend string, seed []byte, cmdline, source string, limit int) error {
	if len(seed) == 0 {
		return nil
	}
	if got := initproto.CmdlineSeed(cmdline); got != source {
		return &hypervisor.UnsupportedError{Backend: backend, What: "deliver per-boot files (SSH keys) to this image",
			Hint: fmt.Sprintf("its disk does not fetch them from the instance metadata service (kernel command line has %s=%q, want %q): the image needs network (network: in the spec), and an image built before kitrun delivered seeds on %s must be rebuilt", initproto.ParamSeed, got, source, backend)}
	}
	if len(seed) > limit {
		return fmt.Errorf("%s: this boot's per-boot files take %d bytes; the platform's instance metadata takes at most %d", backend, len(seed), limit)
	}
	return nil
}
