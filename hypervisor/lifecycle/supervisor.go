package lifecycle

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/imagecache"
	"github.com/kitrun/kitrun/boot/logfile"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// SuperviseOptions configure Supervise.
type SuperviseOptions struct {
	Store *Store
	Name  string
	// Backend starts the machine; when nil, the backend named in the VM's
	// meta.json is opened.
	Backend hypervisor.Backend
	// Report, if set, receives the boot's progress as JSON lines (Report)
	// and is closed once the VM is ready or has failed.
	Report io.WriteCloser
	// Log receives the supervisor's own messages (default os.Stderr).
	Log io.Writer
	// ConsoleLimit and EventsLimit are the sizes at which console.log and
	// events.log rotate (default DefaultConsoleLimit, DefaultEventsLimit).
	ConsoleLimit int64
	EventsLimit  int64
}

// Report is one line the supervisor writes on its report pipe.
type Report struct {
	Event         string    `json:"event"` // booting, ready, failed
	SupervisorPID int       `json:"supervisor_pid,omitempty"`
	Backend       string    `json:"backend,omitempty"`
	MachineID     string    `json:"machine_id,omitempty"`
	Arch          string    `json:"arch,omitempty"`
	Machine       string    `json:"machine,omitempty"`
	Accel         string    `json:"accel,omitempty"`
	AccelReason   string    `json:"accel_reason,omitempty"`
	Published     []Port    `json:"published,omitempty"`
	Timeline      []vm.Mark `json:"timeline,omitempty"`
	Failure       string    `json:"failure,omitempty"`
	Error         string    `json:"error,omitempty"`
}

// Failure kinds of a boot (State.Failure, Report.Failure).
const (
	FailBootTimeout   = "boot-timeout"
	FailServiceFailed = "service-failed"
	FailPanic         = "panic"
	FailEarlyExit     = "early-exit"
	FailStopped       = "stopped"
	FailError         = "error"
)

// FailureKind classifies a boot error.
func FailureKind(err error) string {
	var (
		te *vm.TimeoutError
		se *vm.ServiceError
		ke *vm.TaskError
		ge *vm.GuestError
		pe *vm.PanicError
		xe *vm.ExitedError
	)
	switch {
	case errors.As(err, &te):
		return FailBootTimeout
	case errors.As(err, &se), errors.As(err, &ke), errors.As(err, &ge):
		return FailServiceFailed
	case errors.As(err, &pe):
		return FailPanic
	case errors.As(err, &xe):
		return FailEarlyExit
	}
	return FailError
}

// selfPID is the pid a supervisor records as its own; tests that run
// supervisors in-process give each a stand-in process.
var selfPID = os.Getpid

// supervisor runs one VM.
type supervisor struct {
	o       SuperviseOptions
	store   *Store
	name    string
	meta    Meta
	log     io.Writer
	console *logfile.File
	fan     fanout
	events  *eventLog

	// opMu serialises the transitions that talk to QEMU (pause, resume,
	// the start of a stop) so that they never interleave.
	opMu sync.Mutex

	mu         sync.Mutex
	st         State
	v          *vm.VM
	ctl        hypervisor.Controller
	ending     *ending
	failure    *bootFailure
	bootCancel context.CancelFunc
	booted     chan struct{} // closed once vm.Boot has returned
	finished   chan struct{} // closed once the final state is recorded
	handlers   sync.WaitGroup
}

// ending is a requested end: stop, kill, a failed boot's teardown, a signal.
type ending struct {
	reason string
	start  time.Time
	kill   bool
	done   chan struct{} // closed when the teardown call returned
	err    error
}

type bootFailure struct {
	kind   string
	reason string
}

// Supervise boots the VM name of the store and runs it until it ends,
// recording everything (see the package documentation). Ending ctx stops
// the VM gracefully, as `kitrun stop` does. It returns once the final state
// is recorded; the error is about the supervision itself, not the VM's fate,
// which state.json tells.
func Supervise(ctx context.Context, o SuperviseOptions) error {
	s := &supervisor{o: o, store: o.Store, name: o.Name, log: o.Log,
		booted: make(chan struct{}), finished: make(chan struct{})}
	if s.log == nil {
		s.log = os.Stderr
	}
	defer s.closeReport()
	meta, err := s.store.ReadMeta(o.Name)
	if err != nil {
		return err
	}
	s.meta = meta
	st, err := s.store.ReadState(o.Name)
	if err != nil {
		return err
	}
	if st.State != Creating {
		return fmt.Errorf("VM %s is %s: a supervisor only starts a VM being created", o.Name, st.State)
	}
	pid := selfPID()
	s.st = State{State: Creating, SupervisorPID: pid, SupervisorStart: ProcStart(pid), BootID: host.bootID()}
	if err := s.persist(); err != nil {
		return err
	}
	fmt.Fprintf(s.log, "%s kitrun supervisor (pid %d) for VM %s\n", time.Now().Format(time.RFC3339), pid, o.Name)

	if s.console, err = openRotating(s.store.Path(o.Name, ConsoleFile), o.ConsoleLimit); err == nil {
		s.events, err = openEventLog(s.store.Path(o.Name, EventsFile), o.EventsLimit)
	}
	var ln net.Listener
	if err == nil {
		sock := s.store.Path(o.Name, ControlSocket)
		os.Remove(sock)
		ln, err = net.Listen("unix", sock)
	}
	if err != nil {
		s.endEarly(FailError, err)
		return err
	}
	defer s.console.Close()
	defer s.events.Close()
	go s.serve(ln)
	stopSignals := context.AfterFunc(ctx, func() {
		s.beginEnd("the supervisor was told to stop (signal)", time.Duration(s.meta.Grace), false)
	})
	defer stopSignals()

	s.run()

	ln.Close()
	os.Remove(s.store.Path(o.Name, ControlSocket))
	s.fan.close()
	waitGroupTimeout(&s.handlers, 2*time.Second)
	if err := s.console.Err(); err != nil {
		fmt.Fprintf(s.log, "console.log: %v\n", err)
	}
	if err := s.events.Err(); err != nil {
		fmt.Fprintf(s.log, "events.log: %v\n", err)
	}
	s.mu.Lock()
	fmt.Fprintf(s.log, "%s VM %s %s: %s\n", time.Now().Format(time.RFC3339), o.Name, s.st.State, s.st.Reason)
	s.mu.Unlock()
	return nil
}

// run boots the VM and follows it to its end.
func (s *supervisor) run() {
	img, err := image.Load(s.meta.Image)
	if err == nil {
		// The image may be an entry of kitrun's image cache: keep it from
		// being swept while this VM runs.
		err = imagecache.Pin(img.Dir)
	}
	if err == nil && (img.Manifest.Kernel.SHA256 != s.meta.KernelSHA256 || img.Manifest.Initrd.SHA256 != s.meta.InitrdSHA256) {
		err = fmt.Errorf("image %s changed after the VM was created (its kernel or initrd digest differs)", s.meta.Image)
	}
	if err != nil {
		close(s.booted)
		s.endEarly(FailError, err)
		return
	}
	var publish []hypervisor.PortForward
	for _, p := range s.meta.Published {
		publish = append(publish, hypervisor.PortForward{HostAddr: p.HostAddr, HostPort: p.HostPort, GuestPort: p.GuestPort})
	}
	bootCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.mu.Lock()
	s.bootCancel = cancel
	e := s.ending
	s.mu.Unlock()
	if e != nil {
		close(s.booted)
		s.endEarly(FailStopped, fmt.Errorf("stopped before it was started: %s", e.reason))
		return
	}
	backend := s.o.Backend
	if backend == nil {
		if backend, err = hypervisor.Open(s.meta.Backend, s.meta.BackendOptions); err != nil {
			close(s.booted)
			s.endEarly(FailError, err)
			return
		}
	}
	v, err := vm.Boot(bootCtx, backend, img, vm.Options{
		Resources: s.meta.Resources, Format: s.meta.Format,
		Publish: publish, Console: io.MultiWriter(keepGoing{s.console}, &s.fan), OnEvent: s.onEvent,
		RuntimeDir: s.store.Path(s.name, RuntimeDir),
	})
	if err != nil {
		close(s.booted)
		s.mu.Lock()
		e := s.ending
		s.mu.Unlock()
		if e != nil {
			s.endEarly(FailStopped, fmt.Errorf("stopped before it was started: %s", e.reason))
			return
		}
		s.endEarly(FailureKind(err), err)
		return
	}
	info := v.Machine.Info()
	s.mu.Lock()
	s.v = v
	s.ctl, _ = v.Machine.(hypervisor.Controller)
	s.st.MachineID, s.st.Started = info.ID, info.Started
	if p := info.Process; p != nil {
		s.st.MachinePID, s.st.MachineStart = p.PID, p.Start
	}
	if s.ending == nil {
		s.st.State = Booting
	}
	s.persistLocked()
	s.mu.Unlock()
	close(s.booted)
	s.events.add(time.Now(), "state", Booting, fmt.Sprintf("%s machine %s, %s/%s, accel %s (%s)", info.Backend, info.ID, info.Arch, info.Machine, info.Accel, info.AccelReason))
	s.meta.MachineUsed, s.meta.AccelUsed, s.meta.AccelReason, s.meta.HypervisorVersion = info.Machine, info.Accel, info.AccelReason, info.Version
	if v.SSHKeys() != nil {
		if err := s.saveSSH(v); err != nil {
			fmt.Fprintf(s.log, "ssh: %v\n", err)
		}
	}
	if err := s.store.WriteMeta(s.meta); err != nil {
		fmt.Fprintf(s.log, "meta.json: %v\n", err)
	}
	s.report(Report{Event: "booting", SupervisorPID: selfPID(), Backend: info.Backend, MachineID: info.ID, Arch: info.Arch,
		Machine: info.Machine, Accel: info.Accel, AccelReason: info.AccelReason, Published: s.meta.Published})

	err = v.WaitReady(bootCtx, time.Duration(s.meta.BootTimeout))
	s.mu.Lock()
	e = s.ending
	switch {
	case e != nil:
		// Stopped or killed while booting (or just as it got ready).
		s.failure = &bootFailure{kind: FailStopped, reason: "stopped before it was ready: " + e.reason}
	case err == nil:
		s.st.State, s.st.Ready = Ready, time.Now()
		s.persistLocked()
	default:
		s.failure = &bootFailure{kind: FailureKind(err), reason: firstLine(err.Error())}
	}
	f := s.failure
	s.mu.Unlock()
	// A failure is reported once the machine is gone and the VM's final
	// state recorded, as `kitrun run` returns after its teardown.
	var failed *Report
	switch {
	case f != nil:
		if f.kind != FailStopped {
			fmt.Fprintf(s.log, "boot failed: %v\n", err)
			s.events.add(time.Now(), "boot-failed", f.kind, f.reason)
			s.beginEnd("boot failed: "+f.reason, time.Duration(s.meta.Grace), false)
		}
		msg := f.reason
		if err != nil && f.kind != FailStopped {
			msg = err.Error()
		}
		failed = &Report{Event: "failed", Failure: f.kind, Error: msg}
	case e == nil:
		s.events.add(time.Now(), "state", Ready, "")
		if ctl := s.ctl; ctl != nil {
			// Make sure QMP answers now, while nothing waits on it.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if _, err := ctl.RunState(ctx); err != nil {
				fmt.Fprintf(s.log, "qmp: %v\n", err)
			}
			cancel()
		}
		s.report(Report{Event: "ready", Timeline: v.Timeline()})
		s.closeReport()
	}

	<-v.Exited()
	s.mu.Lock()
	e = s.ending
	s.mu.Unlock()
	if e != nil {
		select {
		case <-e.done:
		case <-time.After(teardownMargin):
		}
	}
	s.finish(v)
	if failed != nil {
		s.report(*failed)
	}
	s.closeReport()
}

// finish records the final state once the machine is gone.
func (s *supervisor) finish(v *vm.VM) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	st := &s.st
	st.Stopped = now
	e := s.ending
	switch {
	case s.failure != nil && s.failure.kind != FailStopped:
		st.State, st.Reason, st.Failure = Failed, s.failure.reason, s.failure.kind
	case e != nil:
		st.State, st.Reason = Stopped, e.reason
		if s.failure != nil { // stopped while booting
			st.Reason, st.Failure = s.failure.reason, s.failure.kind
		}
		st.ShutdownSeconds = now.Sub(e.start).Seconds()
		if e.err != nil && !e.kill {
			st.Forced = true
			st.Reason += "; forced: " + firstLine(e.err.Error())
		}
	case v.Machine.Err() == nil:
		st.State, st.Reason = Stopped, "the guest powered off"
	default:
		st.State, st.Reason = Failed, "the machine exited: "+firstLine(v.Machine.Err().Error())
	}
	s.persistLocked()
	s.events.add(now, "state", st.State, st.Reason)
	close(s.finished)
}

// endEarly records a VM that never got a machine.
func (s *supervisor) endEarly(kind string, err error) {
	fmt.Fprintf(s.log, "VM %s failed: %v\n", s.name, err)
	s.mu.Lock()
	s.st.State, s.st.Reason, s.st.Failure, s.st.Stopped = Failed, firstLine(err.Error()), kind, time.Now()
	if kind == FailStopped {
		s.st.State = Stopped
	}
	s.persistLocked()
	s.events.add(time.Now(), "state", s.st.State, s.st.Reason)
	close(s.finished)
	s.mu.Unlock()
	s.report(Report{Event: "failed", Failure: kind, Error: err.Error()})
	s.closeReport()
}

// beginEnd starts a stop (graceful, forced after grace) or a kill, unless
// the VM already ended. A kill overtakes a stop in progress.
func (s *supervisor) beginEnd(reason string, grace time.Duration, kill bool) (*ending, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	if isDone(s.finished) {
		st := s.st.State
		s.mu.Unlock()
		return nil, &StateError{Name: s.name, State: st, Op: "stop", Hint: "it has already ended"}
	}
	if e := s.ending; e != nil {
		v := s.v
		if kill && !e.kill {
			e.kill = true
			e.reason = reason + " (while: " + e.reason + ")"
			s.mu.Unlock()
			s.events.add(time.Now(), "request", "kill", reason)
			if v != nil {
				go v.Kill()
			}
			return e, nil
		}
		s.mu.Unlock()
		return e, nil
	}
	e := &ending{reason: reason, start: time.Now(), kill: kill, done: make(chan struct{})}
	s.ending = e
	prev := s.st.State
	s.st.State = Stopping
	s.persistLocked()
	if s.bootCancel != nil {
		s.bootCancel()
	}
	s.mu.Unlock()
	what := "stop"
	if kill {
		what = "kill"
	}
	s.events.add(time.Now(), "request", what, reason)
	s.events.add(time.Now(), "state", Stopping, reason)
	go s.teardown(e, prev, grace)
	return e, nil
}

func (s *supervisor) teardown(e *ending, prev string, grace time.Duration) {
	defer close(e.done)
	<-s.booted
	s.mu.Lock()
	v, ctl, kill := s.v, s.ctl, e.kill
	s.mu.Unlock()
	if v == nil {
		return
	}
	if kill {
		e.err = v.Kill()
		return
	}
	if prev == Paused && ctl != nil {
		// A paused guest cannot run its onshutdown tasks.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ctl.Resume(ctx)
		cancel()
	}
	e.err = v.Shutdown(context.Background(), grace)
}

func (s *supervisor) onEvent(ev vm.Event) {
	s.mu.Lock()
	start := s.st.Started
	s.mu.Unlock()
	t := time.Now()
	if !start.IsZero() {
		t = start.Add(ev.Host)
	}
	if g := ev.Guest; g != nil {
		detail := g.Detail
		if len(g.Log) > 0 {
			detail += "\n" + strings.Join(g.Log, "\n")
		}
		s.events.add(t, g.Kind, g.Name, detail)
		return
	}
	s.events.add(t, ev.Kind, "", ev.Detail)
}

func (s *supervisor) persist() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persistLocked()
}

func (s *supervisor) persistLocked() error {
	err := s.store.WriteState(s.name, s.st)
	if err != nil {
		fmt.Fprintf(s.log, "state.json: %v\n", err)
	}
	return err
}

func (s *supervisor) report(r Report) {
	if s.o.Report == nil {
		return
	}
	b, _ := json.Marshal(r)
	s.o.Report.Write(append(b, '\n'))
}

func (s *supervisor) closeReport() {
	if s.o.Report != nil {
		s.o.Report.Close()
		s.o.Report = nil
	}
}

// The control socket.

func (s *supervisor) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			defer c.Close()
			s.handle(c)
		}()
	}
}

func (s *supervisor) handle(c net.Conn) {
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(requestDeadline))
	line, err := readLine(br)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		writeResponse(c, response{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Op {
	case OpStatus:
		writeResponse(c, s.status())
	case OpStop, OpKill:
		s.handleEnd(c, req)
	case OpPause:
		writeResponse(c, s.pause())
	case OpResume:
		writeResponse(c, s.resume())
	case OpAttach:
		s.attach(c, br)
	default:
		writeResponse(c, response{Error: fmt.Sprintf("unknown operation %q", req.Op)})
	}
}

func writeResponse(c net.Conn, r response) error {
	b, _ := json.Marshal(r)
	c.SetWriteDeadline(time.Now().Add(requestDeadline))
	defer c.SetWriteDeadline(time.Time{})
	_, err := c.Write(append(b, '\n'))
	return err
}

func (s *supervisor) state() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	return &st
}

func (s *supervisor) stateError(msg string) response {
	return response{Code: "state", Error: msg, State: s.state()}
}

func (s *supervisor) status() response {
	r := response{OK: true, State: s.state()}
	s.mu.Lock()
	ctl := s.ctl
	s.mu.Unlock()
	if ctl != nil && !isDone(s.finished) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := ctl.RunState(ctx)
		cancel()
		if err != nil {
			st = "unknown (" + err.Error() + ")"
		}
		r.Status = st
		if r.State.MachinePID != 0 {
			r.RSS = RSS(r.State.MachinePID)
		}
	}
	return r
}

func (s *supervisor) handleEnd(c net.Conn, req request) {
	kill := req.Op == OpKill
	reason := req.Reason
	if reason == "" {
		reason = "stopped by kitrun stop"
		if kill {
			reason = "killed by kitrun kill"
		}
	}
	grace := time.Duration(req.Timeout)
	if grace <= 0 {
		grace = time.Duration(s.meta.Grace)
	}
	if _, err := s.beginEnd(reason, grace, kill); err != nil {
		writeResponse(c, s.stateError("it has already ended"))
		return
	}
	if writeResponse(c, response{OK: true, Accepted: true, State: s.state()}) != nil {
		return // the client is gone; the stop goes on
	}
	select {
	case <-s.finished:
		writeResponse(c, response{OK: true, State: s.state()})
	case <-time.After(grace + teardownMargin):
		writeResponse(c, response{Error: fmt.Sprintf("the machine did not end within %s", grace+teardownMargin)})
	}
}

func (s *supervisor) pause() response {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	st, ctl := s.st.State, s.ctl
	s.mu.Unlock()
	switch {
	case st == Paused:
		return s.stateError(fmt.Sprintf("`kitrun resume %s` resumes it", s.name))
	case st != Ready:
		return s.stateError("only a ready VM can be paused")
	case ctl == nil:
		return response{Error: "this backend cannot pause a machine"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opDeadline)
	defer cancel()
	if err := ctl.Pause(ctx); err != nil {
		return response{Error: "pause: " + err.Error()}
	}
	s.mu.Lock()
	s.st.State = Paused
	s.persistLocked()
	s.mu.Unlock()
	s.events.add(time.Now(), "state", Paused, "")
	return response{OK: true, State: s.state()}
}

func (s *supervisor) resume() response {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	st, ctl := s.st.State, s.ctl
	s.mu.Unlock()
	switch {
	case st != Paused:
		return s.stateError("only a paused VM can be resumed")
	case ctl == nil:
		return response{Error: "this backend cannot resume a machine"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opDeadline)
	defer cancel()
	if err := ctl.Resume(ctx); err != nil {
		return response{Error: "resume: " + err.Error()}
	}
	s.mu.Lock()
	s.st.State = Ready
	s.persistLocked()
	s.mu.Unlock()
	s.events.add(time.Now(), "state", Ready, "resumed")
	return response{OK: true, State: s.state()}
}

// attach streams the console to the client and the client's input to the
// guest console, until either side ends.
func (s *supervisor) attach(c net.Conn, br *bufio.Reader) {
	out, ok := s.fan.add()
	if !ok || isDone(s.finished) {
		writeResponse(c, s.stateError("it has ended"))
		return
	}
	defer s.fan.remove(out)
	if writeResponse(c, response{OK: true, State: s.state()}) != nil {
		return
	}
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				s.consoleInput(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case b, ok := <-out:
			if !ok {
				return // the VM ended, or this client fell behind
			}
			c.SetWriteDeadline(time.Now().Add(requestDeadline))
			if _, err := c.Write(b); err != nil {
				return
			}
		case <-inDone:
			return // the client detached
		}
	}
}

func (s *supervisor) consoleInput(p []byte) {
	<-s.booted
	s.mu.Lock()
	v := s.v
	s.mu.Unlock()
	if v == nil || isDone(s.finished) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestDeadline)
	defer cancel()
	if _, err := v.WriteConsole(ctx, p); err != nil {
		fmt.Fprintf(s.log, "console input: %v\n", err)
	}
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
	}
}

// saveSSH writes this boot's client key and pinned host key into the VM's
// directory and records the guest's SSH address, for `kitrun ssh NAME`.
func (s *supervisor) saveSSH(v *vm.VM) error {
	addr, err := v.SSHAddr()
	if err != nil {
		return err
	}
	keys := v.SSHKeys()
	for file, data := range map[string][]byte{
		SSHKeyFile:        keys.ClientKeyPEM(),
		SSHKnownHostsFile: []byte(keys.KnownHostsLine(addr) + "\n"),
	} {
		if err := atomicfile.Write(s.store.Path(s.name, file), data, 0o600); err != nil {
			return err
		}
	}
	s.meta.SSHAddr = addr
	return nil
}
