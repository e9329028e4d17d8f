// Package vm runs an image on any backend and owns kitinit's protocol on
// the host side, once for every backend: it reads the machine's console
// and event channel (or the events framed among the console's lines where
// the channel shares it), decodes and stamps the events, names the boot
// stages on both clocks, types the failures (boot deadline, failed service
// or task, kernel panic, early exit), and runs the stop ladder (kitinit's
// power-off command and the power button, a grace period, then the
// backend's forced stop). The CLI, the benchmarks, the test harness and the
// lifecycle supervisor all boot through it.
//
// Nothing a guest sends can make kitrun buffer without bound: console and
// channel lines are cut at a fixed length, only the console's last lines
// are kept, and events reach a slow consumer through a bounded queue that
// never holds up the boot's own state (ready, failed).
package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// Options for booting an image.
type Options struct {
	hypervisor.Resources
	// Format is the image format to boot ("" for direct kernel boot).
	Format  string
	Publish []hypervisor.PortForward
	// Console receives the guest console's bytes as they come (event lines
	// of a channel that shares the console taken out).
	Console io.Writer
	// OnEvent sees every event in arrival order. It runs on its own
	// goroutine: a slow OnEvent delays later calls, never the boot.
	OnEvent func(Event)
	// ExtraCmdline is appended to the image's kernel command line (direct
	// kernel boot only).
	ExtraCmdline string
	RuntimeDir   string
	// NoEventChannel: see hypervisor.Spec.NoChannel. WaitReady cannot
	// work then.
	NoEventChannel bool
	// ExtraFiles are added to the guest's root filesystem at this boot
	// (hypervisor.Spec.Seed); the image itself is unchanged.
	ExtraFiles []ExtraFile
	// SSH makes this boot reachable over SSH (SSHClient, Exec, Stat,
	// SSHInfo): fresh keys go to the guest as ExtraFiles and the guest's
	// SSH port is published. The image must have been built with `ssh:
	// true` (or assemble.Options.SSH). An image that has an SSH server
	// always gets its keys, SSH set or not: its server cannot start
	// without them.
	SSH bool
	// Snapshots, when set, starts the machine from a snapshot of this
	// image's machine taken at all-ready (building it with a cold boot
	// the first time), then gives the guest its fresh per-run state; see
	// snapshot.go. A boot that cannot use one boots cold
	// (VM.SnapshotUse says why).
	Snapshots *Snapshots
}

// VM is a booted image.
type VM struct {
	Image   *image.Image
	Machine hypervisor.Machine

	started time.Time
	console *consoleReader
	queue   *eventQueue

	mu        sync.Mutex
	exitAt    time.Duration // host time of the machine's exit; 0 until then
	stopAsked time.Duration // host time of the host's first Shutdown or Kill; 0 until then
	stage     Stage
	guestSeen bool
	// firstGuest is the host time of kitinit's first event.
	firstGuest time.Duration
	marks      []Mark
	ready      chan struct{}
	failure    error
	failed     chan struct{}
	exited     chan struct{}
	services   map[string]*ServiceState
	waiters    []waiter
	ssh        *sshState // set with SSH; see ssh.go
	sendMu     sync.Mutex
	// restored: started from a snapshot; ready at kitinit's reseeded.
	restored bool
	snapUse  SnapshotUse
}

// ServiceState is what the host knows of a guest service.
type ServiceState struct {
	Name     string
	Started  int
	Ready    bool
	Failed   bool
	Detail   string
	LastLogs []string
}

type waiter struct {
	match func(Event) bool
	ch    chan Event
}

// Boot starts img on backend. It returns once the machine runs; use
// WaitReady to follow the boot.
func Boot(ctx context.Context, backend hypervisor.Backend, img *image.Image, opts Options) (*VM, error) {
	if opts.Snapshots != nil {
		return opts.Snapshots.boot(ctx, backend, img, opts)
	}
	return boot(ctx, backend, img, opts, "")
}

// boot starts img; from the saved state in restoreDir when set.
func boot(ctx context.Context, backend hypervisor.Backend, img *image.Image, opts Options, restoreDir string) (*VM, error) {
	var sshs *sshState
	if opts.SSH || hasSSHServer(img.Manifest) {
		var err error
		if sshs, err = setupSSH(img, &opts); err != nil {
			return nil, err
		}
	}
	if len(opts.Publish) > 0 && !img.Networked() {
		return nil, fmt.Errorf("publishing ports needs networking, and image %s has `network: none`; set `network: {mode: auto}` in its spec", img.Manifest.Name)
	}
	var seed, reseedFiles []byte
	if restoreDir != "" {
		// The restored guest's services run already: its files come with
		// the reseed, and its entropy with the command itself.
		var files []ExtraFile
		for _, f := range opts.ExtraFiles {
			if f.Path != GuestRandomSeed {
				files = append(files, f)
			}
		}
		var err error
		if reseedFiles, err = seedArchive(img, files); err != nil {
			return nil, err
		}
	} else if len(opts.ExtraFiles) > 0 {
		var err error
		if seed, err = seedArchive(img, opts.ExtraFiles); err != nil {
			return nil, err
		}
	}
	spec := hypervisor.Spec{
		Image: img, Format: opts.Format, Resources: opts.Resources.WithDefaults(),
		Publish: opts.Publish, Seed: seed, NoChannel: opts.NoEventChannel,
		ExtraCmdline: opts.ExtraCmdline, RuntimeDir: opts.RuntimeDir, RestoreFrom: restoreDir,
	}
	m, err := backend.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	forget, err := hypervisor.TrackMachine(backend, m)
	if err != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		m.ForceOff(fctx)
		cancel()
		return nil, err
	}
	v := &VM{
		Image: img, Machine: m, started: m.Info().Started, stage: Stage{Kind: StageStarted},
		ready: make(chan struct{}), failed: make(chan struct{}), exited: make(chan struct{}),
		services: map[string]*ServiceState{}, ssh: sshs,
		queue: newEventQueue(opts.OnEvent), restored: restoreDir != "",
	}
	v.atExit(forget)
	if sshs != nil {
		sshs.endpoint = m.Endpoint
		v.atExit(sshs.close)
	}
	for _, s := range img.Manifest.Services {
		v.services[s] = &ServiceState{Name: s}
	}
	shared := m.Channel() == nil && !opts.NoEventChannel
	v.console = newConsoleReader(opts.Console, shared, v.since, v.deliver)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); v.console.run(m.Console()) }()
	go func() {
		defer readers.Done()
		if ch := m.Channel(); ch != nil {
			readChannel(ch, v.since, v.deliver)
		}
	}()
	if v.restored {
		restored := v.expect(func(e Event) bool { return e.Guest == nil && e.Kind == hypervisor.EvRestored })
		go v.reseed(restored, reseedFiles)
	}
	go v.follow(&readers)
	return v, nil
}

// since is the host time since the machine was started.
func (v *VM) since() time.Duration { return time.Since(v.started) }

// follow handles the backend's own events for the VM's whole life, and
// closes Exited once the machine is gone and every stream is read.
func (v *VM) follow(readers *sync.WaitGroup) {
	var exit *Event
	for be := range v.Machine.Events() {
		ev := Event{Host: be.Host, Kind: be.Kind, Detail: be.Detail}
		if be.Kind == hypervisor.EvExited {
			exit = &ev // after every console line and event
			continue
		}
		v.deliver(ev)
	}
	<-v.Machine.Done()
	// The streams reach EOF once the machine is gone; a backend whose
	// streams do not end is not waited for forever.
	waitTimeout(readers, 5*time.Second)
	if exit != nil {
		v.deliver(*exit)
	}
	v.mu.Lock()
	if v.failure == nil && !isClosed(v.ready) {
		v.failLocked(&ExitedError{Stage: v.stage, Err: v.Machine.Err(), Console: v.ConsoleTail(consoleTailShown)})
	}
	v.mu.Unlock()
	v.queue.close()
	close(v.exited)
}

// deliver updates the VM's state with ev at once, then queues it for
// OnEvent.
func (v *VM) deliver(ev Event) {
	v.handle(ev)
	v.queue.push(ev)
	if v.restored && ev.Guest != nil && ev.Guest.Kind == initproto.EvReseeded && isClosed(v.ready) {
		// A restored guest's all-ready is its reseed's (handle): consumers
		// that follow events see it as a boot's.
		v.queue.push(Event{Host: ev.Host, Guest: &initproto.Event{Uptime: ev.Guest.Uptime, Kind: initproto.EvAllReady, Detail: "restored from a snapshot and reseeded"}})
	}
}

func (v *VM) handle(ev Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := 0; i < len(v.waiters); i++ {
		if w := v.waiters[i]; w.match(ev) {
			w.ch <- ev
			v.waiters = append(v.waiters[:i], v.waiters[i+1:]...)
			i--
		}
	}
	if ev.Guest == nil {
		switch ev.Kind {
		case hypervisor.EvExited:
			v.exitAt = ev.Host
		case hypervisor.EvVMMReady, StageFirmware, hypervisor.EvAPIAccepted, hypervisor.EvRunning:
			v.markLocked(Stage{Kind: ev.Kind}, ev.Host, -1)
		case StageKernel:
			// With `quiet` the first printk line may come at power-off;
			// only one before init is the kernel's start. (The streams
			// are read concurrently: compare times, not arrival.)
			if !v.guestSeen || ev.Host < v.firstGuest {
				v.markLocked(Stage{Kind: ev.Kind}, ev.Host, -1)
			}
		case hypervisor.EvGuestPanic:
			v.failLocked(&PanicError{Stage: v.stage, Line: ev.Detail, Console: v.consoleTailLocked()})
		case hypervisor.EvRestoreStart, hypervisor.EvRestored:
			v.markLocked(Stage{Kind: ev.Kind}, ev.Host, -1)
		case hypervisor.EvRestoreFailed:
			v.failLocked(&RestoreError{Stage: v.stage, Detail: ev.Detail, Console: v.consoleTailLocked()})
		}
		return
	}
	g := ev.Guest
	if !v.guestSeen {
		v.guestSeen, v.firstGuest = true, ev.Host
	}
	stage := ev.Stage()
	switch g.Kind {
	case initproto.EvInitStart, initproto.EvModulesLoaded, initproto.EvNetworkUp, initproto.EvTaskDone:
		v.markLocked(stage, ev.Host, g.Uptime)
	case initproto.EvServiceStart:
		s := v.service(g.Name)
		s.Started++
		if s.Started == 1 {
			v.markLocked(stage, ev.Host, g.Uptime)
		}
	case initproto.EvServiceReady:
		s := v.service(g.Name)
		if !s.Ready {
			s.Ready = true
			v.markLocked(stage, ev.Host, g.Uptime)
		}
	case initproto.EvServiceExit:
		s := v.service(g.Name)
		s.Detail, s.LastLogs = g.Detail, g.Log
	case initproto.EvServiceFailed:
		s := v.service(g.Name)
		s.Failed, s.Detail, s.LastLogs = true, g.Detail, g.Log
		if !isClosed(v.ready) {
			v.failLocked(&ServiceError{Service: g.Name, Detail: g.Detail, Log: g.Log, Status: g.Status})
		}
	case initproto.EvTaskFailed:
		if !isClosed(v.ready) {
			v.failLocked(&TaskError{Task: g.Name, Detail: g.Detail, Log: g.Log, Status: g.Status})
		}
	case initproto.EvError:
		// kitinit could not do something the image asks for (bring up
		// the network, say): before all-ready that fails the boot.
		if !isClosed(v.ready) {
			v.failLocked(&GuestError{Stage: v.stage, Detail: g.Detail})
		}
	case initproto.EvAllReady:
		v.markLocked(stage, ev.Host, g.Uptime)
		if !isClosed(v.ready) && v.failure == nil {
			close(v.ready)
		}
	case initproto.EvShutdown, initproto.EvShutdownDone:
		v.markLocked(stage, ev.Host, g.Uptime)
	case initproto.EvReseeded:
		v.markLocked(stage, ev.Host, g.Uptime)
		if v.restored && !isClosed(v.ready) && v.failure == nil {
			// The snapshot was taken at all-ready: with its fresh state
			// applied (and its ready services named again just before),
			// the restored guest is ready now.
			v.markLocked(Stage{Kind: initproto.EvAllReady}, ev.Host, g.Uptime)
			close(v.ready)
		}
	}
}

func (v *VM) service(name string) *ServiceState {
	s, ok := v.services[name]
	if !ok {
		s = &ServiceState{Name: name}
		v.services[name] = s
	}
	return s
}

// markLocked records a stage. Marks are kept in host-time order: the
// streams are read concurrently, so arrival order between them is not
// time order. For the same reason the stage reached never goes back: the
// backend's vmm-ready, the console's first byte and the kernel's first
// line come before any guest event, whenever their readers get to them
// (on a fast backend, after the guest's first events).
func (v *VM) markLocked(stage Stage, host time.Duration, guest float64) {
	i := len(v.marks)
	for i > 0 && v.marks[i-1].Host > host {
		i--
	}
	v.marks = slices.Insert(v.marks, i, Mark{Stage: stage, Host: host, Guest: guest})
	if stageOrder(stage.Kind) >= stageOrder(v.stage.Kind) {
		v.stage = stage
	}
}

// stageOrder ranks the stages that precede kitinit's events; guest stages
// come in their stream's order.
func stageOrder(kind string) int {
	switch kind {
	case StageStarted:
		return 0
	case hypervisor.EvVMMReady, hypervisor.EvAPIAccepted, hypervisor.EvRunning:
		// The platform's own stages (a cloud's start request accepted,
		// its instance running) come before the guest's first output.
		return 1
	case StageFirmware:
		return 2
	case StageKernel, hypervisor.EvRestoreStart:
		return 3
	case hypervisor.EvRestored:
		return 4
	}
	return 5
}

func (v *VM) failLocked(err error) {
	if v.failure != nil {
		return
	}
	v.failure = err
	close(v.failed)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// WaitReady waits until every service is ready, or the boot fails, or the
// timeout passes (then the error names the last stage reached and carries
// the console's last lines).
func (v *VM) WaitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-v.ready:
		return nil
	case <-v.failed:
		return v.Failure()
	case <-v.exited:
		return v.Failure()
	case <-t.C:
		v.mu.Lock()
		defer v.mu.Unlock()
		return &TimeoutError{Stage: v.stage, After: timeout, Console: v.consoleTailLocked()}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitEvent waits for the first event (from now on) that match accepts.
func (v *VM) WaitEvent(ctx context.Context, match func(Event) bool) (Event, error) {
	return v.wait(ctx, v.expect(match))
}

// expect registers interest in an event before the action that causes it,
// so that a fast answer cannot be missed.
func (v *VM) expect(match func(Event) bool) chan Event {
	ch := make(chan Event, 1)
	v.mu.Lock()
	v.waiters = append(v.waiters, waiter{match: match, ch: ch})
	v.mu.Unlock()
	return ch
}

// Send writes a command to kitinit over the event channel.
func (v *VM) Send(ctx context.Context, cmd string) error {
	ch := v.Machine.Channel()
	if ch == nil {
		return errors.New("this machine has no way to send kitinit commands (its channel shares the console, or is off)")
	}
	if isClosed(v.exited) {
		return hypervisor.ErrExited
	}
	v.sendMu.Lock()
	defer v.sendMu.Unlock()
	return writeCtx(ctx, ch, []byte(cmd+"\n"))
}

// WriteConsole sends input to the guest console.
func (v *VM) WriteConsole(ctx context.Context, p []byte) (int, error) {
	if isClosed(v.exited) {
		return 0, hypervisor.ErrExited
	}
	if err := writeCtx(ctx, v.Machine.Console(), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeCtx writes p under ctx's deadline. A stream with write deadlines
// gets one; on any other, a write that overruns ctx is abandoned and
// finishes, or fails, when the guest reads or the machine exits.
func writeCtx(ctx context.Context, w io.Writer, p []byte) error {
	if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		if dl, has := ctx.Deadline(); has {
			if d.SetWriteDeadline(dl) == nil {
				defer d.SetWriteDeadline(time.Time{})
				_, err := w.Write(p)
				return err
			}
		}
	}
	done := make(chan error, 1)
	b := append([]byte(nil), p...)
	go func() {
		_, err := w.Write(b)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Memory asks kitinit for the guest's memory figures (bytes): mem_total,
// mem_available, mem_free, rss_<service>, rss_kitinit, rootfs_used.
func (v *VM) Memory(ctx context.Context) (map[string]int64, error) {
	ch := v.expect(func(e Event) bool { return e.Guest != nil && e.Guest.Kind == initproto.EvMemory })
	if err := v.Send(ctx, initproto.CmdMemory); err != nil {
		return nil, fmt.Errorf("memory request: %w", err)
	}
	ev, err := v.wait(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("memory request: %w", err)
	}
	return ev.Guest.Data, nil
}

func (v *VM) wait(ctx context.Context, ch chan Event) (Event, error) {
	select {
	case ev := <-ch:
		return ev, nil
	case <-v.exited:
		select {
		case ev := <-ch:
			return ev, nil
		default:
		}
		return Event{}, hypervisor.ErrExited
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Failure is the first failure seen, if any.
func (v *VM) Failure() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failure
}

// Timeline returns the marks so far, in host-time order.
func (v *VM) Timeline() []Mark {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Mark(nil), v.marks...)
}

// ExitTime is the host time (since the machine was started) at which the
// machine exited; 0 while it runs.
func (v *VM) ExitTime() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.exitAt
}

// noteStop records when the host first asked the machine to stop.
func (v *VM) noteStop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopAsked == 0 {
		v.stopAsked = max(time.Since(v.started), 1)
	}
}

// StoppedItself says whether the machine stopped on its own: the guest
// began shutting down (kitinit's shutdown event), or the machine ended,
// before the host first asked it to stop (Shutdown, Kill). A guest that
// halts just as the host asks is told apart by the times of the two, not
// by which the host handled first. Meaningful once Exited is closed.
func (v *VM) StoppedItself() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopAsked == 0 {
		return true
	}
	began := v.exitAt
	for _, m := range v.marks {
		if m.Stage.Kind == initproto.EvShutdown {
			began = m.Host
			break
		}
	}
	return began < v.stopAsked
}

// Stage is the last stage reached.
func (v *VM) Stage() Stage {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stage
}

// Services returns a snapshot of the services' states.
func (v *VM) Services() []ServiceState {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []ServiceState
	for _, name := range v.Image.Manifest.Services {
		out = append(out, *v.service(name))
	}
	return out
}

// consoleTailShown is how many console lines a failure carries.
const consoleTailShown = 20

// ConsoleTail returns the console's last n lines (at most consoleKept).
func (v *VM) ConsoleTail(n int) []string { return v.console.ring.Last(n) }

func (v *VM) consoleTailLocked() []string { return v.console.ring.Last(consoleTailShown) }

// Exited is closed once the machine has exited and its events are handled.
func (v *VM) Exited() <-chan struct{} { return v.exited }

// Shutdown powers the guest off gracefully and waits until the machine is
// gone: kitinit's power-off command (it runs the onshutdown tasks) and the
// power button (for a guest whose channel is not up, or that has none),
// then up to grace for the guest to power off, then the backend's forced
// stop. It returns every step's error, or nil when the guest powered off
// within grace (which forgives a request that failed).
func (v *VM) Shutdown(ctx context.Context, grace time.Duration) error {
	if isClosed(v.exited) {
		return nil
	}
	v.noteStop()
	result := &multierror.Error{ErrorFormat: joinErrors}
	var steps multierror.Group
	stepCtx, cancel := context.WithTimeout(ctx, time.Second)
	if v.Machine.Channel() != nil {
		steps.Go(func() error {
			if err := v.Send(stepCtx, initproto.CmdPoweroff); err != nil && !v.machineGone() {
				return fmt.Errorf("poweroff command: %w", err)
			}
			return nil
		})
	}
	steps.Go(func() error {
		if err := v.Machine.PowerButton(stepCtx); err != nil && !v.machineGone() {
			return fmt.Errorf("power button: %w", err)
		}
		return nil
	})
	if err := steps.Wait(); err != nil {
		result = multierror.Append(result, err.Errors...)
	}
	cancel()
	// A press before the guest's button driver is loaded is lost: press
	// again now and then while waiting.
	if v.waitGoneRepressing(ctx, grace) {
		if err := v.waitExited(); err != nil {
			return err
		}
		// A guest that powered off is forgiven a failed request, not a
		// backend that left resources behind.
		var ce *hypervisor.CleanupError
		if errors.As(v.Machine.Err(), &ce) {
			return ce
		}
		return nil
	}
	result = multierror.Append(result, fmt.Errorf("guest did not power off within %s", grace))
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := v.Machine.ForceOff(fctx)
	cancel()
	if err != nil && !v.machineGone() {
		result = multierror.Append(result, fmt.Errorf("forced stop: %w", err))
	}
	if err := v.waitExited(); err != nil {
		result = multierror.Append(result, err)
	}
	var ce *hypervisor.CleanupError
	if errors.As(v.Machine.Err(), &ce) {
		result = multierror.Append(result, ce)
	}
	return result.ErrorOrNil()
}

// joinErrors renders a teardown's errors on one line, as a failure's
// reason is shown.
func joinErrors(errs []error) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Kill ends the machine at once and waits until it is gone.
func (v *VM) Kill() error {
	v.noteStop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := v.Machine.ForceOff(ctx)
	if werr := v.waitExited(); err == nil {
		err = werr
	}
	var ce *hypervisor.CleanupError
	if err == nil && errors.As(v.Machine.Err(), &ce) {
		err = ce
	}
	return err
}

func (v *VM) machineGone() bool {
	select {
	case <-v.Machine.Done():
		return true
	default:
		return false
	}
}

func (v *VM) waitGoneRepressing(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		step := min(time.Until(deadline), buttonRepeat)
		if step <= 0 {
			return v.machineGone()
		}
		if v.waitGone(ctx, step) {
			return true
		}
		if ctx.Err() != nil || time.Until(deadline) <= 0 {
			return v.machineGone()
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		v.Machine.PowerButton(pctx)
		cancel()
	}
}

// buttonRepeat is how often Shutdown presses the power button again.
const buttonRepeat = 2 * time.Second

func (v *VM) waitGone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-v.Machine.Done():
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return v.machineGone()
	}
}

// waitExited waits for the VM's own end (events handled) after the
// machine's.
func (v *VM) waitExited() error {
	select {
	case <-v.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("machine events did not end 10s after teardown")
	}
}

// atExit runs f once the machine has exited.
func (v *VM) atExit(f func()) {
	go func() {
		<-v.exited
		f()
	}()
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
	}
}

// Failures.

// TimeoutError: the boot did not finish in time.
type TimeoutError struct {
	Stage   Stage
	After   time.Duration
	Console []string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("boot did not reach all-ready within %s; last stage reached: %s%s", e.After, e.Stage, consoleBlock(e.Console))
}

// ServiceError: a service failed before all-ready.
type ServiceError struct {
	Service string
	Detail  string
	Status  *int
	Log     []string
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("service %s failed: %s%s", e.Service, e.Detail, logBlock("its last output", e.Log))
}

// TaskError: an onboot task failed.
type TaskError struct {
	Task   string
	Detail string
	Status *int
	Log    []string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("onboot task %s failed: %s%s", e.Task, e.Detail, logBlock("its last output", e.Log))
}

// GuestError: kitinit reported a problem before all-ready.
type GuestError struct {
	Stage  Stage
	Detail string
}

func (e *GuestError) Error() string {
	return fmt.Sprintf("kitinit failed after stage %s: %s", e.Stage, e.Detail)
}

// PanicError: the guest kernel panicked.
type PanicError struct {
	Stage   Stage
	Line    string
	Console []string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("guest kernel panicked (last stage: %s): %s%s", e.Stage, e.Line, consoleBlock(e.Console))
}

// ExitedError: the machine went away before all-ready.
type ExitedError struct {
	Stage   Stage
	Err     error
	Console []string
}

func (e *ExitedError) Error() string {
	how := "powered off"
	if e.Err != nil {
		how = "exited: " + e.Err.Error()
	}
	return fmt.Sprintf("machine %s before all-ready; last stage reached: %s%s", how, e.Stage, consoleBlock(e.Console))
}

// RestoreError: the machine could not be started from its snapshot.
type RestoreError struct {
	Stage   Stage
	Detail  string
	Console []string
}

func (e *RestoreError) Error() string {
	return fmt.Sprintf("restoring the snapshot failed (last stage reached: %s): %s%s", e.Stage, e.Detail, consoleBlock(e.Console))
}

func consoleBlock(lines []string) string { return logBlock("last console lines", lines) }

func logBlock(title string, lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "\n--- " + title + " ---\n" + strings.Join(lines, "\n")
}
