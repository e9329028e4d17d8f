package hyperv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// Polling: the VM's end is noticed when its console relay ends (Hyper-V
// closes the pipe when the VM stops), confirmed by Get-VM; a poll every
// pollInterval covers a relay that ends late. Each poll starts PowerShell
// on the Windows host, which is not free.
var pollInterval = 5 * time.Second

// streamLinger is how long after the VM is gone its relays may still run
// for a reader that has not reached EOF (they end by themselves when the
// pipes close).
const streamLinger = 30 * time.Second

// machine is one Hyper-V VM.
type machine struct {
	b     *Backend
	name  string
	info  hypervisor.Info
	start time.Time

	console, channel io.ReadWriteCloser
	conEnded         chan struct{}
	conEndOnce       sync.Once
	listeners        []net.Listener

	wake chan struct{}

	mu      sync.Mutex
	forced  bool
	exitErr error

	sendMu     sync.Mutex
	eventsDone bool
	events     chan hypervisor.BackendEvent
	done       chan struct{}
}

var _ hypervisor.MemoryReporter = (*machine)(nil)

func (m *machine) Info() hypervisor.Info                  { return m.info }
func (m *machine) Events() <-chan hypervisor.BackendEvent { return m.events }
func (m *machine) Done() <-chan struct{}                  { return m.done }

// Console implements hypervisor.Machine: COM1.
func (m *machine) Console() io.ReadWriter { return &watchedReader{m.console, m.consoleEnded} }

// Channel implements hypervisor.Machine: COM2, nil when the channel is off.
func (m *machine) Channel() io.ReadWriter {
	if m.channel == nil {
		return nil
	}
	return m.channel
}

func (m *machine) consoleEnded() {
	m.conEndOnce.Do(func() { close(m.conEnded) })
	m.poke()
}

// watchedReader tells the machine when its stream has ended: the VM has
// most likely stopped.
type watchedReader struct {
	rw    io.ReadWriter
	ended func()
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.rw.Read(p)
	if err != nil {
		w.ended()
	}
	return n, err
}

func (w *watchedReader) Write(p []byte) (int, error) { return w.rw.Write(p) }

func (m *machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
}

func (m *machine) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *machine) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Endpoint implements hypervisor.Machine.
func (m *machine) Endpoint(guestPort int) (string, error) {
	return hypervisor.EndpointOf(m.info.Published, guestPort)
}

// HostMemory implements hypervisor.MemoryReporter from Hyper-V's own
// counters: MemoryAssigned is the host memory the VM holds. Hyper-V does
// not say what its worker process costs beyond that, so RSS, PSS and
// Overhead stay zero.
func (m *machine) HostMemory(ctx context.Context) (hypervisor.HostMemory, error) {
	s, err := m.b.Driver.Status(ctx, m.name)
	if err != nil {
		return hypervisor.HostMemory{}, err
	}
	if !s.Found {
		return hypervisor.HostMemory{}, hypervisor.ErrExited
	}
	return hypervisor.HostMemory{GuestResident: s.MemoryAssigned}, nil
}

// PowerButton implements hypervisor.Machine: Ctrl+Alt+Del on the VM's
// keyboard, on which kitinit powers off gracefully (see platform.go for
// why not the shutdown integration service).
func (m *machine) PowerButton(ctx context.Context) error {
	if m.exited() {
		return hypervisor.ErrExited
	}
	sent, err := m.b.Driver.PowerButton(ctx, m.name)
	if err != nil {
		if m.exited() {
			return hypervisor.ErrExited
		}
		return err
	}
	if sent {
		m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvPowerdown})
	}
	return nil
}

// ForceOff implements hypervisor.Machine: Stop-VM -TurnOff, then the VM is
// removed (by the watcher, which Done waits for).
func (m *machine) ForceOff(ctx context.Context) error {
	if m.exited() {
		return nil
	}
	m.mu.Lock()
	m.forced = true
	m.mu.Unlock()
	var errs []error
	if err := m.b.Driver.TurnOff(ctx, m.name); err != nil {
		errs = append(errs, err)
	}
	m.poke()
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case <-m.done:
		// Gone: a turn-off that failed because the VM was stopping
		// anyway is no matter.
		return nil
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("VM %s not gone: %w", m.name, ctx.Err()))
	case <-t.C:
		errs = append(errs, fmt.Errorf("VM %s not gone 60s after it was turned off", m.name))
	}
	return errors.Join(errs...)
}

// watch follows the VM until it is off or gone, then removes it.
func (m *machine) watch() {
	var exitErr error
	failures := 0
	after := 100 * time.Millisecond // the next poll once the console has ended
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-m.wake:
		case <-m.conEnded:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s, err := m.b.Driver.Status(ctx, m.name)
		cancel()
		if err != nil {
			// Hyper-V (or the SSH link) is not answering: give up after a
			// few tries, keeping the reason.
			if failures++; failures >= 5 {
				exitErr = fmt.Errorf("lost the VM: %w", err)
				break
			}
			continue
		}
		failures = 0
		if !s.Found {
			exitErr = fmt.Errorf("VM %s was removed by someone else (kitrun destroy, or Remove-VM)", m.name)
			break
		}
		if s.State == "Off" {
			m.mu.Lock()
			forced := m.forced
			m.mu.Unlock()
			switch {
			case strings.Contains(s.Notes, "destroyed"):
				exitErr = fmt.Errorf("VM %s was destroyed", m.name)
			case forced:
				exitErr = fmt.Errorf("VM %s was turned off", m.name)
			}
			break
		}
		if isClosed(m.conEnded) {
			// The console ended but the VM still runs: it is stopping
			// (Stopping, then Off), or a relay died. Poll again soon, then
			// less and less often, without spinning on the closed channel.
			after = min(after*2, pollInterval)
			select {
			case <-time.After(after):
			case <-m.wake:
			}
		}
	}
	m.finish(exitErr)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// finish removes the VM and its files and reports the exit.
func (m *machine) finish(exitErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	if err := m.b.Driver.Remove(ctx, m.name, false); err != nil {
		exitErr = errors.Join(exitErr, fmt.Errorf("removing VM %s: %w", m.name, err))
	}
	cancel()
	m.closeListeners()
	m.mu.Lock()
	m.exitErr = exitErr
	m.mu.Unlock()
	detail := "powered off"
	if exitErr != nil {
		detail = exitErr.Error()
	}
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvExited, Detail: detail})
	close(m.done)
	m.closeEvents()
	time.AfterFunc(streamLinger, m.closeStreams)
}

func (m *machine) closeStreams() {
	for _, s := range []io.ReadWriteCloser{m.console, m.channel} {
		if s != nil {
			s.Close()
		}
	}
}

// emit stamps and delivers a backend event (vm drains the channel). The
// power button emits from its caller's goroutine while the watcher may be
// closing the channel: sendMu orders the two.
func (m *machine) emit(e hypervisor.BackendEvent) {
	if e.Host == 0 {
		e.Host = time.Since(m.start)
	}
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if m.eventsDone {
		return
	}
	select {
	case m.events <- e:
	case <-time.After(10 * time.Second):
		// A consumer that stopped draining must not wedge the machine.
	}
}

func (m *machine) closeEvents() {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if !m.eventsDone {
		m.eventsDone = true
		close(m.events)
	}
}

// listen publishes a guest port: each connection to the host port is
// relayed by a script on the Windows host to the guest's address.
func (m *machine) listen(pf hypervisor.PortForward) error {
	l, err := net.Listen("tcp", pf.Addr())
	if err != nil {
		return fmt.Errorf("hyperv: publishing guest port %d on %s: %w", pf.GuestPort, pf.Addr(), err)
	}
	m.listeners = append(m.listeners, l)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go m.relayConn(c, pf.GuestPort)
		}
	}()
	return nil
}

func (m *machine) relayConn(c net.Conn, port int) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	g, err := m.b.Driver.DialGuest(ctx, m.name, port)
	cancel()
	if err != nil {
		return
	}
	defer g.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(g, c); done <- struct{}{} }()
	go func() { io.Copy(c, g); done <- struct{}{} }()
	<-done
}

func (m *machine) closeListeners() {
	for _, l := range m.listeners {
		l.Close()
	}
}
