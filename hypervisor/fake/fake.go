// Package fake is a backend without a hypervisor, for tests: each machine
// is a goroutine that plays the guest over in-memory streams exactly as a
// kitinit guest does on a real backend — console lines, kitinit's events
// framed on a channel (or on the console, where the platform shares it),
// answers to the host's commands, the power button, published ports served
// on loopback, and an exit. It is one implementation of the boundary beside
// QEMU, and passes the same conformance test (hypervisortest); tests of the
// layers above (vm, lifecycle, the test harness) run on it in milliseconds.
//
// A machine's behaviour is a Script; Healthy is a guest that boots its
// image's services, serves its published ports, answers memory requests
// and powers off when asked. Scripts for failures (a service that fails, a
// hang, a panic, a flood, forged lines) are written against Guest.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
)

// Backend starts fake machines. The zero value runs Healthy guests.
type Backend struct {
	// Script plays each guest; Healthy when nil.
	Script Script
	// SharedChannel makes the machines' channel share the console, as a
	// cloud's serial console does.
	SharedChannel bool

	mu     sync.Mutex
	specs  []hypervisor.Spec
	guests []*Guest
}

// Guests returns the guests started, in order, for tests to drive.
func (b *Backend) Guests() []*Guest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Guest(nil), b.guests...)
}

// Specs returns the specs machines were started with, in order.
func (b *Backend) Specs() []hypervisor.Spec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]hypervisor.Spec(nil), b.specs...)
}

// Script plays one guest until it powers off (it calls g.Exit) or the
// machine is forced off (g.Killed is closed).
type Script func(g *Guest)

var _ hypervisor.Backend = (*Backend)(nil)

func init() {
	hypervisor.Register("fake", func(o hypervisor.Options) (hypervisor.Backend, error) {
		if err := o.Check("fake", "shared-channel"); err != nil {
			return nil, err
		}
		return &Backend{SharedChannel: o["shared-channel"] == "true"}, nil
	})
}

// Name implements hypervisor.Backend.
func (b *Backend) Name() string { return "fake" }

// Verify implements hypervisor.Backend.
func (b *Backend) Verify(context.Context, arch.Arch) error { return nil }

// Version implements hypervisor.Backend.
func (b *Backend) Version(context.Context, arch.Arch) (string, error) { return "fake 1", nil }

// Platform implements hypervisor.Backend: one machine type, "fake", whose
// hardware names devices no kernel has (nothing boots it but this package).
func (b *Backend) Platform(a arch.Arch) (platform.Platform, error) {
	hw := platform.Hardware{Console: "ttyFAKE0", Channel: "/dev/fakechan"}
	if b.SharedChannel {
		hw.Channel = ""
	}
	return platform.Platform{
		Name: "fake", Arch: a, DefaultMachine: "fake",
		Machines: map[string]platform.Hardware{"fake": hw},
		Network:  platform.Network{Address: "192.0.2.15/24", Gateway: "192.0.2.1", DNS: "192.0.2.1"},
	}, nil
}

// machines are the running fake machines of this process, by ID: what
// Destroy and Alive find (a fake machine cannot outlive its process).
var (
	machinesMu sync.Mutex
	machines   = map[string]*machine{}
	nextID     atomic.Int64
)

// Destroy implements hypervisor.Backend.
func (b *Backend) Destroy(ctx context.Context, id string) error {
	machinesMu.Lock()
	m := machines[id]
	machinesMu.Unlock()
	if m == nil {
		return nil
	}
	return m.ForceOff(ctx)
}

// Alive implements hypervisor.Backend.
func (b *Backend) Alive(ctx context.Context, id string) (bool, error) {
	machinesMu.Lock()
	defer machinesMu.Unlock()
	_, ok := machines[id]
	return ok, nil
}

// Start implements hypervisor.Backend. Any image boots, whatever platform
// it was built for: nothing here reads its kernel.
func (b *Backend) Start(ctx context.Context, spec hypervisor.Spec) (hypervisor.Machine, error) {
	if spec.Image == nil {
		return nil, errors.New("fake: no image to boot")
	}
	res := spec.Resources.WithDefaults()
	if res.Machine != "" && res.Machine != "fake" {
		return nil, fmt.Errorf("fake has no machine %q; valid: fake", res.Machine)
	}
	if spec.Format != "" && spec.Format != image.FormatDirect {
		if _, err := spec.Image.Disk(spec.Format); err != nil {
			return nil, err
		}
	}
	published, err := hypervisor.ResolvePorts(spec.Publish)
	if err != nil {
		return nil, err
	}
	id := "fake-" + strconv.FormatInt(nextID.Add(1), 10)
	m := &machine{
		info: hypervisor.Info{
			Backend: "fake", ID: id, Arch: spec.Image.Arch.Name, Machine: "fake", Format: spec.Format,
			Accel: "none", AccelReason: "fake backend", Version: "fake 1", Started: time.Now(),
			Published: published,
		},
		events: make(chan hypervisor.BackendEvent, 64),
		done:   make(chan struct{}),
		killed: make(chan struct{}),
		button: make(chan struct{}, 1),
	}
	m.conGuest, m.conHost = pipePair()
	if !b.SharedChannel && !spec.NoChannel {
		m.chGuest, m.chHost = pipePair()
	}
	for _, p := range published {
		l, err := net.Listen("tcp", p.Addr())
		if err != nil {
			m.closeListeners()
			return nil, fmt.Errorf("fake: publishing guest port %d on %s: %w", p.GuestPort, p.Addr(), err)
		}
		m.listeners = append(m.listeners, guestListener{port: p.GuestPort, l: l})
	}
	machinesMu.Lock()
	machines[id] = m
	machinesMu.Unlock()
	g := &Guest{m: m, Spec: spec, Image: spec.Image, commands: make(chan string, 16), shared: b.SharedChannel && !spec.NoChannel}
	m.guest = g
	b.mu.Lock()
	b.specs = append(b.specs, spec)
	b.guests = append(b.guests, g)
	b.mu.Unlock()
	script := b.Script
	if script == nil {
		script = Healthy
	}
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvVMMReady, Detail: "fake 1"})
	if m.chGuest != nil {
		go g.readCommands()
	}
	go g.readConsoleInput()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				m.exit(fmt.Errorf("fake guest script panicked: %v", r))
			}
		}()
		script(g)
		// A script that returns without exiting has powered off.
		m.exit(nil)
	}()
	return m, nil
}

// machine is a fake machine.
type machine struct {
	info      hypervisor.Info
	conGuest  *halfPipe // the guest's end of the console
	conHost   *halfPipe
	chGuest   *halfPipe // nil when the channel shares the console or is off
	chHost    *halfPipe
	listeners []guestListener

	mu         sync.Mutex
	err        error
	events     chan hypervisor.BackendEvent
	eventsDone bool
	done       chan struct{}
	killed     chan struct{}
	killOnce   sync.Once
	exitOnce   sync.Once
	button     chan struct{}
	guest      *Guest
	paused     bool
	resumed    chan struct{} // closed on Resume; replaced on Pause
}

var _ hypervisor.Controller = (*machine)(nil)

// Pause implements hypervisor.Controller: the guest acts on nothing
// (commands, the power button) until resumed, as stopped CPUs would.
func (m *machine) Pause(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.paused {
		m.paused, m.resumed = true, make(chan struct{})
	}
	return nil
}

// Resume implements hypervisor.Controller.
func (m *machine) Resume(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused {
		m.paused = false
		close(m.resumed)
	}
	return nil
}

// RunState implements hypervisor.Controller.
func (m *machine) RunState(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone() {
		return "shutdown", nil
	}
	if m.paused {
		return "paused", nil
	}
	return "running", nil
}

// running waits while the machine is paused; false if it was killed.
func (m *machine) running() bool {
	m.mu.Lock()
	paused, resumed := m.paused, m.resumed
	m.mu.Unlock()
	if !paused {
		return true
	}
	select {
	case <-resumed:
		return true
	case <-m.killed:
		return false
	}
}

type guestListener struct {
	port int
	l    net.Listener
}

func (m *machine) Info() hypervisor.Info                  { return m.info }
func (m *machine) Console() io.ReadWriter                 { return m.conHost }
func (m *machine) Events() <-chan hypervisor.BackendEvent { return m.events }
func (m *machine) Done() <-chan struct{}                  { return m.done }
func (m *machine) Endpoint(guestPort int) (string, error) {
	return hypervisor.EndpointOf(m.info.Published, guestPort)
}

func (m *machine) Channel() io.ReadWriter {
	if m.chHost == nil {
		return nil
	}
	return m.chHost
}

func (m *machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *machine) gone() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *machine) emit(e hypervisor.BackendEvent) {
	e.Host = time.Since(m.info.Started)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.eventsDone {
		m.events <- e
	}
}

// PowerButton implements hypervisor.Machine.
func (m *machine) PowerButton(context.Context) error {
	if m.gone() {
		return hypervisor.ErrExited
	}
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvPowerdown})
	select {
	case m.button <- struct{}{}:
	default:
	}
	return nil
}

// ForceOff implements hypervisor.Machine.
func (m *machine) ForceOff(ctx context.Context) error {
	if m.gone() {
		return nil
	}
	m.killOnce.Do(func() { close(m.killed) })
	m.exit(errors.New("killed by the host"))
	return nil
}

// exit ends the machine: the guest's ends of the streams close (the host
// reads what was written, then EOF), listeners close, Done closes.
func (m *machine) exit(err error) {
	m.exitOnce.Do(func() {
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		m.conGuest.Close()
		if m.chGuest != nil {
			m.chGuest.Close()
		}
		m.closeListeners()
		detail := "exit status 0"
		if err != nil {
			detail = err.Error()
		}
		m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvExited, Detail: detail})
		machinesMu.Lock()
		delete(machines, m.info.ID)
		machinesMu.Unlock()
		close(m.done)
		m.mu.Lock()
		m.eventsDone = true
		close(m.events)
		m.mu.Unlock()
	})
}

func (m *machine) closeListeners() {
	for _, l := range m.listeners {
		l.l.Close()
	}
}

// Guest is a script's view of its machine.
type Guest struct {
	m        *machine
	Spec     hypervisor.Spec
	Image    *image.Image
	commands chan string
	shared   bool
	wmu      sync.Mutex
	imu      sync.Mutex
	typed    []byte
}

// Machine is the guest's machine, for tests that act behind the host's
// back (pause it, say).
func (g *Guest) Machine() hypervisor.Machine { return g.m }

// Typed is everything the host wrote to the guest's console.
func (g *Guest) Typed() string {
	g.imu.Lock()
	defer g.imu.Unlock()
	return string(g.typed)
}

// readConsoleInput records the host's console input and echoes it, as a
// guest's shell on a serial console does.
func (g *Guest) readConsoleInput() {
	buf := make([]byte, 512)
	for {
		n, err := g.m.conGuest.Read(buf)
		if n > 0 {
			g.imu.Lock()
			g.typed = append(g.typed, buf[:n]...)
			g.imu.Unlock()
			g.Write(append([]byte("echo: "), buf[:n]...))
		}
		if err != nil {
			return
		}
	}
}

// Uptime is the guest's clock: time since the machine was started.
func (g *Guest) Uptime() float64 { return time.Since(g.m.info.Started).Seconds() }

// Say writes a line to the console.
func (g *Guest) Say(line string) { g.Write([]byte(line + "\n")) }

// Write writes raw bytes to the console.
func (g *Guest) Write(p []byte) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.m.conGuest.Write(p)
}

// Emit sends a kitinit event, framed as kitinit frames it, on the channel
// (or among the console's lines where the channel shares the console). A
// zero Uptime is now.
func (g *Guest) Emit(ev initproto.Event) {
	if ev.Uptime == 0 {
		ev.Uptime = g.Uptime()
	}
	g.EmitRaw(ev.Encode())
}

// EmitRaw writes bytes to the channel as they are (a damaged or forged
// line, a flood).
func (g *Guest) EmitRaw(p []byte) {
	if g.shared {
		g.Write(p)
		return
	}
	if g.m.chGuest != nil {
		g.m.chGuest.Write(p)
	}
}

// Commands delivers the host's commands (lines on the channel).
func (g *Guest) Commands() <-chan string { return g.commands }

// PowerButton is signalled when the host presses the power button.
func (g *Guest) PowerButton() <-chan struct{} { return g.m.button }

// Killed is closed when the host forces the machine off.
func (g *Guest) Killed() <-chan struct{} { return g.m.killed }

// Exit powers the machine off: nil for a clean power-off, an error for a
// crash (the machine's Err).
func (g *Guest) Exit(err error) { g.m.exit(err) }

func (g *Guest) readCommands() {
	buf := make([]byte, 512)
	var line []byte
	for {
		n, err := g.m.chGuest.Read(buf)
		for _, c := range buf[:n] {
			if c == '\n' {
				select {
				case g.commands <- string(line):
				default: // a script that ignores commands
				}
				line = line[:0]
				continue
			}
			if len(line) < 256 {
				line = append(line, c)
			}
		}
		if err != nil {
			return
		}
	}
}

// Serve answers connections to a published guest port with handle, until
// the machine is gone.
func (g *Guest) Serve(guestPort int, handle func(net.Conn)) error {
	for _, gl := range g.m.listeners {
		if gl.port == guestPort {
			go func() {
				for {
					c, err := gl.l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						handle(c)
					}()
				}
			}()
			return nil
		}
	}
	return fmt.Errorf("guest port %d is not published", guestPort)
}

// Healthy boots like kitinit with the image's services: every service
// starts and becomes ready, published ports answer with a greeting, a
// memory request is answered, and a power-off command or the power button
// runs the shutdown and powers off.
func Healthy(g *Guest) {
	g.Say("fake: booting " + g.Image.Manifest.Name)
	for _, p := range g.m.info.Published {
		g.Serve(p.GuestPort, func(c net.Conn) { fmt.Fprintf(c, "hello from %s\n", g.Image.Manifest.Name) })
	}
	Boot(g)
	ServeUntilPoweroff(g)
}

// Boot reports a healthy boot to all-ready.
func Boot(g *Guest) {
	g.Emit(initproto.Event{Kind: initproto.EvInitStart})
	g.Emit(initproto.Event{Kind: initproto.EvModulesLoaded})
	for _, s := range g.Image.Manifest.Services {
		g.Emit(initproto.Event{Kind: initproto.EvServiceStart, Name: s})
		g.Say("[" + s + "] started")
		g.Emit(initproto.Event{Kind: initproto.EvServiceReady, Name: s})
	}
	g.Emit(initproto.Event{Kind: initproto.EvAllReady})
	g.Say("kitinit: all ready")
}

// ServeUntilPoweroff answers commands until a power-off is asked for (by
// command or button), then shuts down and exits cleanly; it returns at once
// if the machine is forced off.
func ServeUntilPoweroff(g *Guest) {
	for {
		select {
		case cmd := <-g.Commands():
			if !g.m.running() {
				return
			}
			switch cmd {
			case initproto.CmdMemory:
				g.Emit(initproto.Event{Kind: initproto.EvMemory, Data: map[string]int64{
					"mem_total": 230 << 20, "mem_available": 200 << 20, "mem_free": 190 << 20,
					"rss_kitinit": 6 << 20, "rootfs_used": 5 << 20}})
			case initproto.CmdPoweroff:
				Shutdown(g, "poweroff requested by host")
				return
			}
		case <-g.PowerButton():
			if !g.m.running() {
				return
			}
			Shutdown(g, "power button")
			return
		case <-g.Killed():
			return
		}
	}
}

// Shutdown reports a shutdown and powers off cleanly.
func Shutdown(g *Guest, why string) {
	g.Emit(initproto.Event{Kind: initproto.EvShutdown, Detail: why})
	g.Emit(initproto.Event{Kind: initproto.EvShutdownDone})
	g.Say("reboot: Power down")
	g.Exit(nil)
}
