// Package vm runs an image on a backend and follows its boot: it turns the
// machine's event stream into stages, a timeline and typed failures (boot
// deadline, failed service or task, kernel panic, early exit), and shuts the
// machine down cleanly. The CLI, the benchmarks and the test harness all
// boot through it.
package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// Options for booting an image.
type Options struct {
	Machine   string
	Accel     string
	MemoryMiB int
	CPUs      int
	Publish   []hypervisor.PortForward
	// Console receives the guest console as it comes.
	Console io.Writer
	// OnEvent sees every event as it arrives (progress output).
	OnEvent func(hypervisor.Event)
	// ExtraCmdline is appended to the image's kernel command line.
	ExtraCmdline string
	RuntimeDir   string
	// NoEventChannel: see hypervisor.Config. WaitReady cannot work then.
	NoEventChannel bool
	// ExtraFiles are added to the guest's root filesystem at this boot, in
	// an archive appended to a temporary copy of the image's initramfs
	// (removed when the machine exits); the image itself is unchanged. See
	// extraInitrd in ssh.go.
	ExtraFiles []ExtraFile
	// SSH makes this boot reachable over SSH (SSHClient, Exec, Stat,
	// SSHInfo): fresh keys go to the guest as ExtraFiles and a free
	// 127.0.0.1 port is forwarded to the guest's SSH port. The image must
	// have been built with `ssh: true` (or assemble.Options.SSH). An image
	// that has an SSH server always gets its keys, SSH set or not: its
	// server cannot start without them.
	SSH bool
}

// VM is a booted image.
type VM struct {
	Image   *image.Image
	Machine hypervisor.Machine

	mu        sync.Mutex
	stage     string
	guestSeen bool
	marks     []Mark
	ready     chan struct{}
	failure   error
	failed    chan struct{}
	exited    chan struct{}
	services  map[string]*ServiceState
	waiters   []waiter
	tail      func(int) []string
	ssh       *sshState // set with SSH; see ssh.go
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
	match func(hypervisor.Event) bool
	ch    chan hypervisor.Event
}

// Mark is one stage of the boot on both clocks.
type Mark struct {
	Stage string
	// Host is the time since the hypervisor process was started.
	Host time.Duration
	// Guest is the guest's uptime at the mark; negative when the mark is
	// host-side only.
	Guest float64
}

// Boot starts img on backend. It returns once the machine runs; use
// WaitReady to follow the boot.
func Boot(ctx context.Context, backend hypervisor.Backend, img *image.Image, opts Options) (*VM, error) {
	cmdline := img.Cmdline
	if opts.ExtraCmdline != "" {
		cmdline = strings.TrimSpace(cmdline + " " + opts.ExtraCmdline)
	}
	var sshs *sshState
	if opts.SSH || hasSSHServer(img.Manifest) {
		var err error
		if sshs, err = setupSSH(img, &opts); err != nil {
			return nil, err
		}
	}
	cfg := hypervisor.Config{
		Arch: img.Arch, Machine: opts.Machine, Accel: opts.Accel,
		MemoryMiB: opts.MemoryMiB, CPUs: opts.CPUs,
		Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: cmdline,
		Network: img.Manifest.Network == "user", Publish: opts.Publish,
		Console: opts.Console, RuntimeDir: opts.RuntimeDir, NoEventChannel: opts.NoEventChannel,
	}
	if len(opts.Publish) > 0 && !cfg.Network {
		return nil, fmt.Errorf("--publish needs networking, and image %s has `network: none`; set `network: {mode: user}` in its spec", img.Manifest.Name)
	}
	tmpDir := ""
	if len(opts.ExtraFiles) > 0 {
		var err error
		if cfg.Initrd, tmpDir, err = extraInitrd(img, opts.ExtraFiles); err != nil {
			return nil, err
		}
	}
	m, err := backend.Start(ctx, cfg)
	if err != nil {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
		return nil, err
	}
	v := &VM{
		Image: img, Machine: m, stage: "started",
		ready: make(chan struct{}), failed: make(chan struct{}), exited: make(chan struct{}),
		services: map[string]*ServiceState{}, ssh: sshs,
	}
	if tmpDir != "" {
		v.atExit(func() { os.RemoveAll(tmpDir) })
	}
	if sshs != nil {
		v.atExit(sshs.close)
	}
	if t, ok := m.(interface{ ConsoleTail(int) []string }); ok {
		v.tail = t.ConsoleTail
	}
	for _, s := range img.Manifest.Services {
		v.services[s] = &ServiceState{Name: s}
	}
	go v.follow(opts.OnEvent)
	return v, nil
}

// follow consumes the machine's events for the VM's whole life.
func (v *VM) follow(onEvent func(hypervisor.Event)) {
	for ev := range v.Machine.Events() {
		if onEvent != nil {
			onEvent(ev)
		}
		v.handle(ev)
	}
	v.mu.Lock()
	if v.failure == nil && !isClosed(v.ready) {
		v.failLocked(&ExitedError{Stage: v.stage, Err: v.Machine.Err(), Console: v.consoleTail(20)})
	}
	v.mu.Unlock()
	close(v.exited)
}

func (v *VM) handle(ev hypervisor.Event) {
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
		case hypervisor.EvVMMReady:
			v.markLocked(ev.Kind, ev.Host, -1)
		case hypervisor.EvKernelStart:
			// With `quiet` the first printk line may come at power-off;
			// only one before init is the kernel's start.
			if !v.guestSeen {
				v.markLocked(ev.Kind, ev.Host, -1)
			}
		case hypervisor.EvGuestPanic:
			v.failLocked(&PanicError{Stage: v.stage, Line: ev.Detail, Console: v.consoleTail(20)})
		}
		return
	}
	g := ev.Guest
	v.guestSeen = true
	stage := g.Kind
	if g.Name != "" {
		stage += " " + g.Name
	}
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

func (v *VM) markLocked(stage string, host time.Duration, guest float64) {
	v.stage = stage
	v.marks = append(v.marks, Mark{Stage: stage, Host: host, Guest: guest})
}

func (v *VM) failLocked(err error) {
	if v.failure != nil {
		return
	}
	v.failure = err
	close(v.failed)
}

func (v *VM) consoleTail(n int) []string {
	if v.tail == nil {
		return nil
	}
	return v.tail(n)
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
		if err := v.Failure(); err != nil {
			return err
		}
		return nil
	case <-t.C:
		v.mu.Lock()
		defer v.mu.Unlock()
		return &TimeoutError{Stage: v.stage, After: timeout, Console: v.consoleTail(20)}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitEvent waits for the first event (from now on) that match accepts.
func (v *VM) WaitEvent(ctx context.Context, match func(hypervisor.Event) bool) (hypervisor.Event, error) {
	return v.wait(ctx, v.expect(match))
}

// expect registers interest in an event before the action that causes it,
// so that a fast answer cannot be missed.
func (v *VM) expect(match func(hypervisor.Event) bool) chan hypervisor.Event {
	ch := make(chan hypervisor.Event, 1)
	v.mu.Lock()
	v.waiters = append(v.waiters, waiter{match: match, ch: ch})
	v.mu.Unlock()
	return ch
}

// Memory asks kitinit for the guest's memory figures (bytes): mem_total,
// mem_available, mem_free, rss_<service>, rss_kitinit, rootfs_used.
func (v *VM) Memory(ctx context.Context) (map[string]int64, error) {
	ch := v.expect(func(e hypervisor.Event) bool { return e.Guest != nil && e.Guest.Kind == initproto.EvMemory })
	if err := v.Machine.Send(ctx, initproto.CmdMemory); err != nil {
		return nil, fmt.Errorf("memory request: %w", err)
	}
	ev, err := v.wait(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("memory request: %w", err)
	}
	return ev.Guest.Data, nil
}

func (v *VM) wait(ctx context.Context, ch chan hypervisor.Event) (hypervisor.Event, error) {
	select {
	case ev := <-ch:
		return ev, nil
	case <-v.exited:
		select {
		case ev := <-ch:
			return ev, nil
		default:
		}
		return hypervisor.Event{}, errors.New("machine exited")
	case <-ctx.Done():
		return hypervisor.Event{}, ctx.Err()
	}
}

// Failure is the first failure seen, if any.
func (v *VM) Failure() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failure
}

// Timeline returns the marks so far, in arrival order.
func (v *VM) Timeline() []Mark {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Mark(nil), v.marks...)
}

// Stage is the last stage reached.
func (v *VM) Stage() string {
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

// ConsoleTail returns the console's last n lines.
func (v *VM) ConsoleTail(n int) []string { return v.consoleTail(n) }

// Exited is closed once the machine has exited and its events are consumed.
func (v *VM) Exited() <-chan struct{} { return v.exited }

// Shutdown powers the guest off gracefully (kitinit runs onshutdown tasks),
// forcing it after grace. It waits until the machine is gone.
func (v *VM) Shutdown(ctx context.Context, grace time.Duration) error {
	err := v.Machine.Stop(ctx, grace)
	select {
	case <-v.exited:
	case <-time.After(5 * time.Second):
		err = errors.Join(err, errors.New("machine events did not end 5s after teardown"))
	}
	return err
}

// Failures.

// TimeoutError: the boot did not finish in time.
type TimeoutError struct {
	Stage   string
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
	Stage  string
	Detail string
}

func (e *GuestError) Error() string {
	return fmt.Sprintf("kitinit failed after stage %s: %s", e.Stage, e.Detail)
}

// PanicError: the guest kernel panicked.
type PanicError struct {
	Stage   string
	Line    string
	Console []string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("guest kernel panicked (last stage: %s): %s%s", e.Stage, e.Line, consoleBlock(e.Console))
}

// ExitedError: the machine went away before all-ready.
type ExitedError struct {
	Stage   string
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

func consoleBlock(lines []string) string { return logBlock("last console lines", lines) }

func logBlock(title string, lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "\n--- " + title + " ---\n" + strings.Join(lines, "\n")
}
