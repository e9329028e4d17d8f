package lifecycle

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/fake"
)

// fakeGuest plays a kitinit guest on the fake backend: no VM, the events
// and console lines a kitinit guest sends, so that the whole supervisor and
// its protocol run in milliseconds. failService makes the boot fail with a
// service failure; hold, if set, keeps the boot before all-ready until
// closed.
func fakeBackend(failService bool, hold chan struct{}) *fake.Backend {
	return &fake.Backend{Script: func(g *fake.Guest) {
		g.Say("kitinit: started")
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		if failService {
			g.Say("[web] boom")
			g.Emit(initproto.Event{Kind: initproto.EvServiceFailed, Name: "web", Detail: "exit status 1"})
			<-g.Killed()
			return
		}
		ready := true
		if hold != nil {
			select {
			case <-hold:
			case <-g.Commands():
				ready = false // asked to power off while booting
			case <-g.PowerButton():
				ready = false
			case <-g.Killed():
				return
			}
		}
		if ready {
			g.Emit(initproto.Event{Kind: initproto.EvAllReady})
			select {
			case <-g.Commands():
			case <-g.PowerButton():
			case <-g.Killed():
				return
			}
		}
		if st, _ := g.Machine().(hypervisor.Controller).RunState(context.Background()); st == "paused" {
			<-g.Killed() // a paused guest cannot power off
			return
		}
		g.Emit(initproto.Event{Kind: initproto.EvShutdown, Detail: "poweroff requested by host"})
		g.Emit(initproto.Event{Kind: initproto.EvTaskDone, Name: "bye"})
		g.Say("kitinit: shutdown done")
		g.Emit(initproto.Event{Kind: initproto.EvShutdownDone})
		g.Exit(nil)
	}}
}

// fakeImage writes an image directory image.Load accepts.
func fakeImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	m := image.Manifest{Version: image.ManifestVersion, Name: "fake", Arch: "x86_64", Network: image.NetworkAuto, Platform: "fake",
		Kernel: image.Blob{SHA256: "k"}, Initrd: image.Initrd{Blob: image.Blob{SHA256: "i"}}}
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, image.ManifestFile), b, 0o644)
	os.WriteFile(filepath.Join(dir, image.KernelFile), nil, 0o644)
	os.WriteFile(filepath.Join(dir, image.InitrdFile), nil, 0o644)
	return dir
}

// supervised is an in-process supervisor of a fake VM.
type supervised struct {
	store   *Store
	name    string
	backend *fake.Backend
	cancel  context.CancelFunc
	result  chan error
	reports chan Report
}

func supervise(t *testing.T, store *Store, name string, b *fake.Backend) *supervised {
	t.Helper()
	meta := Meta{Name: name, Image: fakeImage(t), KernelSHA256: "k", InitrdSHA256: "i", Arch: "x86_64",
		Backend: "fake", Resources: hypervisor.Resources{Accel: "tcg", MemoryMiB: 128, CPUs: 1}, BootTimeout: Duration(10 * time.Second), Grace: Duration(time.Second),
		Published: []Port{{HostAddr: "127.0.0.1", HostPort: 2222, GuestPort: 22}}, Created: time.Now()}
	if err := store.Create(meta, State{State: Creating}); err != nil {
		t.Fatal(err)
	}
	// The supervisor runs in this process: it records a stand-in
	// process as itself, which ends when it does, as a real one would.
	standIn := exec.Command("sleep", "600")
	if err := standIn.Start(); err != nil {
		t.Fatal(err)
	}
	selfPID = func() int { return standIn.Process.Pid }
	r, w := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	sv := &supervised{store: store, name: name, backend: b, cancel: cancel, result: make(chan error, 1), reports: make(chan Report, 8)}
	go func() {
		err := Supervise(ctx, SuperviseOptions{Store: store, Name: name, Backend: b, Report: w, Log: io.Discard})
		standIn.Process.Kill()
		standIn.Wait()
		sv.result <- err
	}()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var rep Report
			json.Unmarshal(sc.Bytes(), &rep)
			sv.reports <- rep
		}
		close(sv.reports)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-sv.result:
		case <-time.After(10 * time.Second):
			t.Error("supervisor did not end")
		}
	})
	return sv
}

// verdict waits for ready or failed.
func (sv *supervised) verdict(t *testing.T) Report {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rep, ok := <-sv.reports:
			if !ok {
				t.Fatal("report pipe closed without a verdict")
			}
			if rep.Event != "booting" {
				return rep
			}
		case <-timeout:
			t.Fatal("no verdict")
		}
	}
}

func (sv *supervised) ended(t *testing.T) {
	t.Helper()
	select {
	case err := <-sv.result:
		if err != nil {
			t.Fatalf("Supervise: %v", err)
		}
		sv.result <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor did not end")
	}
}

func readEvents(t *testing.T, s *Store, name string) []EventLine {
	t.Helper()
	b, err := os.ReadFile(s.Path(name, EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []EventLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ev, err := ParseEventLine(l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func hasEvent(evs []EventLine, kind, name string) bool {
	for _, e := range evs {
		if e.Kind == kind && e.Name == name {
			return true
		}
	}
	return false
}

func TestSupervisorLifecycle(t *testing.T) {
	s := testStore(t)
	b := fakeBackend(false, nil)
	sv := supervise(t, s, "web", b)
	ctx := context.Background()
	if rep := sv.verdict(t); rep.Event != "ready" {
		t.Fatalf("verdict %+v", rep)
	}
	v, err := s.Get("web")
	if err != nil || v.State.State != Ready || v.State.SupervisorPID == os.Getpid() || v.State.Ready.IsZero() {
		t.Fatalf("after ready: %+v %v", v, err)
	}
	if v.Meta.AccelUsed != "none" || v.Meta.MachineUsed != "fake" || v.State.MachineID == "" {
		t.Errorf("meta not completed: %+v", v.Meta)
	}
	if _, err := os.Stat(s.Path("web", ControlSocket)); err != nil {
		t.Fatal(err)
	}

	// Pause and resume, with QEMU's view.
	if v, err := s.Pause(ctx, "web"); err != nil || v.State.State != Paused {
		t.Fatalf("pause: %+v %v", v, err)
	}
	if live, err := s.Live(ctx, "web"); err != nil || live.QEMUStatus != "paused" || live.State.State != Paused {
		t.Fatalf("live: %+v %v", live, err)
	}
	var se *StateError
	if _, err := s.Pause(ctx, "web"); !errors.As(err, &se) || !strings.Contains(err.Error(), "kitrun resume web") {
		t.Errorf("second pause: %v", err)
	}
	if v, err := s.Resume(ctx, "web"); err != nil || v.State.State != Ready {
		t.Fatalf("resume: %+v %v", v, err)
	}
	if _, err := s.Resume(ctx, "web"); !errors.As(err, &se) {
		t.Errorf("second resume: %v", err)
	}
	if live, _ := s.Live(ctx, "web"); live == nil || live.QEMUStatus != "running" {
		t.Errorf("live after resume: %+v", live)
	}

	// Attach: output streams, input reaches the guest console.
	inR, inW := io.Pipe()
	var out qemutest.Buffer
	attached := make(chan error, 1)
	go func() { attached <- s.Attach(ctx, "web", inR, &out, AttachOptions{}) }()
	waitFor(t, func() bool {
		inW.Write([]byte("ls\n"))
		return strings.Contains(out.String(), "echo: ls")
	})
	if !strings.Contains(b.Guests()[0].Typed(), "ls\n") {
		t.Error("input did not reach the guest console")
	}

	// Removing a running VM needs -f.
	if err := s.Remove(ctx, "web", false); !errors.As(err, &se) || !strings.Contains(err.Error(), "kitrun rm -f web") {
		t.Errorf("rm of a running VM: %v", err)
	}

	// A graceful stop: onshutdown ran, duration recorded, attach ends.
	v, changed, err := s.Stop(ctx, "web", time.Second)
	if err != nil || !changed || v.State.State != Stopped || v.State.Reason != "stopped by kitrun stop" || v.State.ShutdownSeconds <= 0 || v.State.Forced {
		t.Fatalf("stop: %+v %v %v", v, changed, err)
	}
	select {
	case err := <-attached:
		if err != nil {
			t.Errorf("attach: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("attach did not end with the VM")
	}
	if !strings.Contains(out.String(), "kitinit: shutdown done") {
		t.Errorf("attach output lacks the shutdown: %q", out.String())
	}
	sv.ended(t)
	evs := readEvents(t, s, "web")
	for _, want := range [][2]string{{"state", "booting"}, {"all-ready", ""}, {"state", "paused"}, {"request", "stop"}, {"task-done", "bye"}, {"shutdown-done", ""}, {"exited", ""}, {"state", "stopped"}} {
		if !hasEvent(evs, want[0], want[1]) {
			t.Errorf("events.log lacks %v", want)
		}
	}
	if _, err := os.Stat(s.Path("web", ControlSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left: %v", err)
	}
	var logs strings.Builder
	if err := s.Logs(ctx, "web", &logs, LogOptions{}); err != nil || !strings.Contains(logs.String(), "kitinit: started") || !strings.Contains(logs.String(), "echo: ls") {
		t.Errorf("logs: %q %v", logs.String(), err)
	}
	// Stopping a stopped VM says so; pausing it is a state error.
	if _, changed, err := s.Stop(ctx, "web", 0); err != nil || changed {
		t.Errorf("second stop: %v %v", changed, err)
	}
	if _, changed, err := s.Kill(ctx, "web"); err != nil || changed {
		t.Errorf("kill of a stopped VM: %v %v", changed, err)
	}
	if _, err := s.Pause(ctx, "web"); !errors.As(err, &se) {
		t.Errorf("pause of a stopped VM: %v", err)
	}
	if err := s.Attach(ctx, "web", nil, io.Discard, AttachOptions{}); !errors.As(err, &se) {
		t.Errorf("attach to a stopped VM: %v", err)
	}
	if err := s.Remove(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.VMDir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VM dir left: %v", err)
	}
}

func TestSupervisorStopWhilePausedResumesFirst(t *testing.T) {
	s := testStore(t)
	sv := supervise(t, s, "web", fakeBackend(false, nil))
	sv.verdict(t)
	ctx := context.Background()
	if _, err := s.Pause(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.Stop(ctx, "web", 5*time.Second)
	if err != nil || v.State.State != Stopped || v.State.Forced || v.State.ShutdownSeconds > 4 {
		t.Fatalf("stop of a paused VM: %+v %v", v.State, err)
	}
}

func TestSupervisorForcedStopIsRecorded(t *testing.T) {
	s := testStore(t)
	b := fakeBackend(false, nil)
	sv := supervise(t, s, "web", b)
	sv.verdict(t)
	// Paused behind the supervisor's back: the guest cannot power off.
	b.Guests()[0].Machine().(hypervisor.Controller).Pause(context.Background())
	v, _, err := s.Stop(context.Background(), "web", 200*time.Millisecond)
	if err != nil || v.State.State != Stopped || !v.State.Forced || !strings.Contains(v.State.Reason, "forced: guest did not power off") {
		t.Fatalf("forced stop: %+v %v", v.State, err)
	}
}

func TestSupervisorKill(t *testing.T) {
	s := testStore(t)
	sv := supervise(t, s, "web", fakeBackend(false, nil))
	sv.verdict(t)
	v, changed, err := s.Kill(context.Background(), "web")
	if err != nil || !changed || v.State.State != Stopped || v.State.Reason != "killed by kitrun kill" {
		t.Fatalf("kill: %+v %v %v", v, changed, err)
	}
	sv.ended(t)
	if hasEvent(readEvents(t, s, "web"), "shutdown-done", "") {
		t.Error("a kill ran the guest's shutdown")
	}
}

func TestSupervisorMachineCrash(t *testing.T) {
	s := testStore(t)
	b := fakeBackend(false, nil)
	sv := supervise(t, s, "web", b)
	sv.verdict(t)
	b.Guests()[0].Exit(errors.New("signal: killed"))
	sv.ended(t)
	v, err := s.Get("web")
	if err != nil || v.State.State != Failed || v.State.Reason != "the machine exited: signal: killed" {
		t.Fatalf("after a crash: %+v %v", v, err)
	}
}

func TestSupervisorBootFailure(t *testing.T) {
	s := testStore(t)
	sv := supervise(t, s, "web", fakeBackend(true, nil))
	rep := sv.verdict(t)
	if rep.Event != "failed" || rep.Failure != FailServiceFailed || !strings.Contains(rep.Error, "service web failed") {
		t.Fatalf("verdict %+v", rep)
	}
	// The verdict comes once the VM is down and recorded.
	v, err := s.Get("web")
	if err != nil || v.State.State != Failed || v.State.Failure != FailServiceFailed {
		t.Fatalf("after a failed boot: %+v %v", v, err)
	}
	sv.ended(t)
}

func TestSupervisorStopWhileBooting(t *testing.T) {
	s := testStore(t)
	hold := make(chan struct{})
	defer close(hold)
	b := fakeBackend(false, hold)
	sv := supervise(t, s, "web", b)
	waitFor(t, func() bool { v, _ := s.Get("web"); return v != nil && v.State.State == Booting })
	v, changed, err := s.Stop(context.Background(), "web", time.Second)
	if err != nil || !changed || v.State.State != Stopped || v.State.Failure != FailStopped || v.State.Reason != "stopped before it was ready: stopped by kitrun stop" {
		t.Fatalf("stop while booting: %+v %v %v", v.State, changed, err)
	}
	if rep := sv.verdict(t); rep.Event != "failed" || rep.Failure != FailStopped {
		t.Errorf("verdict %+v", rep)
	}
	sv.ended(t)
}

func TestSupervisorSignalStopsGracefully(t *testing.T) {
	s := testStore(t)
	sv := supervise(t, s, "web", fakeBackend(false, nil))
	sv.verdict(t)
	sv.cancel()
	sv.ended(t)
	v, _ := s.Get("web")
	if v.State.State != Stopped || !strings.Contains(v.State.Reason, "signal") || !hasEvent(readEvents(t, s, "web"), "shutdown-done", "") {
		t.Fatalf("after a signal: %+v", v.State)
	}
}

func TestSupervisorRefusesAVMNotBeingCreated(t *testing.T) {
	s := testStore(t)
	mustCreate(t, s, "web", State{State: Stopped})
	err := Supervise(context.Background(), SuperviseOptions{Store: s, Name: "web", Backend: fakeBackend(false, nil), Log: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "is stopped") {
		t.Fatalf("got %v", err)
	}
}

func TestLogsFollowEndsWithTheVM(t *testing.T) {
	s := testStore(t)
	sv := supervise(t, s, "web", fakeBackend(false, nil))
	sv.verdict(t)
	var out qemutest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- s.Logs(context.Background(), "web", &out, LogOptions{Follow: true, Poll: 10 * time.Millisecond})
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "kitinit: started") })
	if _, _, err := s.Stop(context.Background(), "web", time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logs -f did not end with the VM")
	}
	if !strings.Contains(out.String(), "kitinit: shutdown done") {
		t.Errorf("followed output lacks the end: %q", out.String())
	}
	var evs strings.Builder
	s.Logs(context.Background(), "web", &evs, LogOptions{Events: true})
	if !strings.Contains(evs.String(), "\tshutdown-done\t") {
		t.Errorf("events: %q", evs.String())
	}
}

func TestControlSocketDeadline(t *testing.T) {
	old := requestDeadline
	requestDeadline = 200 * time.Millisecond
	t.Cleanup(func() { requestDeadline = old }) // after the supervisor's
	s := testStore(t)
	sv := supervise(t, s, "web", fakeBackend(false, nil))
	sv.verdict(t)
	// A client that connects and says nothing is dropped.
	c, err := s.dial(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("silent client: %v, want EOF", err)
	}
	// Bad requests are answered, not fatal.
	r, err := s.call(context.Background(), "web", request{Op: "dance"}, time.Second)
	if err == nil || !strings.Contains(err.Error(), `unknown operation "dance"`) {
		t.Errorf("unknown op: %+v %v", r, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
