package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "vms"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, s *Store, name string, st State) {
	t.Helper()
	if err := s.Create(Meta{Name: name, Arch: "x86_64", Backend: "fake", Resources: hypervisor.Resources{Accel: "tcg"}, Created: time.Now()}, st); err != nil {
		t.Fatal(err)
	}
}

func TestCreateReadAndClash(t *testing.T) {
	s := testStore(t)
	mustCreate(t, s, "web", State{State: Creating})
	m, err := s.ReadMeta("web")
	if err != nil || m.Name != "web" || m.Version != MetaVersion {
		t.Fatalf("meta %+v, %v", m, err)
	}
	st, err := s.ReadState("web")
	if err != nil || st.State != Creating || st.Updated.IsZero() {
		t.Fatalf("state %+v, %v", st, err)
	}
	err = s.Create(Meta{Name: "web"}, State{State: Creating})
	var ex *ExistsError
	if !errors.As(err, &ex) || !strings.Contains(err.Error(), `"web" already exists`) {
		t.Fatalf("second create: %v, want ExistsError", err)
	}
	// No creation leftovers, only the VM.
	ents, _ := os.ReadDir(s.Dir)
	if len(ents) != 1 || ents[0].Name() != "web" {
		t.Errorf("store holds %v", ents)
	}
	for _, f := range []string{MetaFile, StateFile, LockFile} {
		if _, err := os.Stat(s.Path("web", f)); err != nil {
			t.Error(err)
		}
	}
}

func TestCreateRaceOneWins(t *testing.T) {
	s := testStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Create(Meta{Name: "race"}, State{State: Creating})
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		var ex *ExistsError
		switch {
		case err == nil:
			ok++
		case !errors.As(err, &ex):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d creates succeeded, want 1", ok)
	}
}

func TestNames(t *testing.T) {
	for _, bad := range []string{"", "Web", "-web", ".web", "we b", "we/b", strings.Repeat("a", 64)} {
		if ValidateName(bad) == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"web", "0", "a_b.c-d", strings.Repeat("a", 63)} {
		if err := ValidateName(good); err != nil {
			t.Errorf("ValidateName(%q): %v", good, err)
		}
	}
	for _, base := range []string{"minimal", "My App!", "---", strings.Repeat("x", 100)} {
		n := GenerateName(base)
		if err := ValidateName(n); err != nil {
			t.Errorf("GenerateName(%q) = %q: %v", base, n, err)
		}
	}
	if a, b := GenerateName("x"), GenerateName("x"); a == b {
		t.Logf("two generated names equal (%s): possible but unlikely", a)
	}
	s := testStore(t)
	if err := s.Create(Meta{Name: "Bad"}, State{State: Creating}); err == nil {
		t.Error("created a VM with a bad name")
	}
	long, _ := Open("/tmp/" + strings.Repeat("d", 90))
	if err := long.Create(Meta{Name: "web"}, State{State: Creating}); err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Errorf("deep state dir: %v", err)
	}
}

func TestNotFoundNamesTheVMs(t *testing.T) {
	s := testStore(t)
	_, err := s.Get("nope")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "there are none") {
		t.Fatalf("empty store: %v", err)
	}
	mustCreate(t, s, "a", State{State: Stopped})
	mustCreate(t, s, "b", State{State: Stopped})
	_, err = s.Get("nope")
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), `no VM named "nope"; VMs: a, b`) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.Get("../a"); !errors.As(err, &nf) {
		t.Errorf("a path as a name: %v", err)
	}
}

func TestAtomicWritesNeverShowHalfAFile(t *testing.T) {
	s := testStore(t)
	mustCreate(t, s, "web", State{State: Ready})
	done := make(chan struct{})
	var readErr error
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			if _, err := s.ReadState("web"); err != nil {
				readErr = err
				return
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			if readErr != nil {
				t.Fatalf("a reader saw a partial state.json: %v", readErr)
			}
			ents, _ := os.ReadDir(s.VMDir("web"))
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file left: %s", e.Name())
				}
			}
			return
		default:
		}
		st := State{State: Ready, Reason: strings.Repeat("x", i%5000)}
		if err := s.WriteState("web", st); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptFilesAreReportedNotFatal(t *testing.T) {
	cases := map[string]string{
		"garbage":   "{not json",
		"empty":     "",
		"truncated": `{"state": "rea`,
		"bad state": `{"state": "dancing"}`,
	}
	for what, content := range cases {
		t.Run(what, func(t *testing.T) {
			s := testStore(t)
			mustCreate(t, s, "web", State{State: Ready})
			mustCreate(t, s, "ok", State{State: Stopped})
			os.WriteFile(s.Path("web", StateFile), []byte(content), 0o644)
			v, err := s.Get("web")
			var ce *CorruptError
			if !errors.As(err, &ce) || v == nil || v.Err == nil {
				t.Fatalf("Get: %v, %+v", err, v)
			}
			if !strings.Contains(err.Error(), s.Path("web", StateFile)) || !strings.Contains(err.Error(), "kitrun rm -f web") {
				t.Errorf("message lacks the path or the way out: %v", err)
			}
			vms, err := s.List()
			if err != nil || len(vms) != 2 || vms[0].Err != nil || vms[1].Err == nil {
				t.Fatalf("List: %v, %+v", err, vms)
			}
			// Nothing is running by these files' account: rm needs -f.
			if err := s.Remove(context.Background(), "web", false); !errors.As(err, &ce) {
				t.Errorf("rm of a corrupt VM: %v", err)
			}
			if err := s.Remove(context.Background(), "web", true); err != nil {
				t.Errorf("rm -f of a corrupt VM: %v", err)
			}
		})
	}
	s := testStore(t)
	mustCreate(t, s, "web", State{State: Stopped})
	os.Remove(s.Path("web", MetaFile))
	if _, err := s.Get("web"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing meta.json: %v", err)
	}
}

func TestLock(t *testing.T) {
	s := testStore(t)
	mustCreate(t, s, "web", State{State: Stopped})
	unlock, err := s.Lock(context.Background(), "web", "first")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.TryLock("web", "second"); ok || err != nil {
		t.Fatalf("TryLock while held: %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Lock(ctx, "web", "second")
	var be *BusyError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "first, pid") {
		t.Fatalf("Lock while held: %v", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
		t.Errorf("waited %s for a 100ms deadline", d)
	}
	// A waiter gets the lock once it is released.
	got := make(chan error, 1)
	go func() {
		u, err := s.Lock(context.Background(), "web", "third")
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// A waiter on a VM that is removed meanwhile learns it is gone.
	unlock, _ = s.Lock(context.Background(), "web", "rm")
	go func() {
		_, err := s.Lock(context.Background(), "web", "late")
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.removeDir("web")
	unlock()
	var nf *NotFoundError
	if err := <-got; !errors.As(err, &nf) {
		t.Errorf("lock on a removed VM: %v", err)
	}
}

func TestAlive(t *testing.T) {
	// Our own process: alive, start time stable.
	pid := os.Getpid()
	if ok, why := host.alive(pid, ProcStart(pid)); !ok {
		t.Errorf("self not alive: %s", why)
	}
	if ok, _ := host.alive(pid, ProcStart(pid)+1); ok {
		t.Error("a wrong start time was believed")
	}
}

func TestTruth(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	procs := map[int]procStat{
		100: {State: 'S', Start: 5000},
		200: {State: 'Z', Start: 6000},
	}
	sys := system{
		stat: func(pid int) (procStat, error) {
			if p, ok := procs[pid]; ok {
				return p, nil
			}
			return procStat{}, os.ErrNotExist
		},
		bootID: func() string { return "boot-2" },
		now:    func() time.Time { return now },
	}
	cases := []struct {
		name    string
		st      State
		created time.Time
		want    string // state
		reason  string // substring
	}{
		{"alive", State{State: Ready, SupervisorPID: 100, SupervisorStart: 5000, BootID: "boot-2"}, now, Ready, ""},
		{"stopped stays", State{State: Stopped, Reason: "done", SupervisorPID: 999}, now, Stopped, "done"},
		{"dead pid", State{State: Ready, SupervisorPID: 999, SupervisorStart: 1, BootID: "boot-2"}, now, Failed, "supervisor died (pid 999)"},
		{"zombie", State{State: Paused, SupervisorPID: 200, SupervisorStart: 6000, BootID: "boot-2"}, now, Failed, "supervisor died (pid 200)"},
		{"pid reused", State{State: Ready, SupervisorPID: 100, SupervisorStart: 4999, BootID: "boot-2"}, now, Failed, "now another process's"},
		{"host rebooted", State{State: Ready, SupervisorPID: 100, SupervisorStart: 5000, BootID: "boot-1"}, now, Failed, "host rebooted"},
		{"creating, fresh", State{State: Creating}, now.Add(-time.Second), Creating, ""},
		{"creating, stale", State{State: Creating}, now.Add(-time.Hour), Failed, "never started"},
	}
	for _, c := range cases {
		got, changed := sys.truth(c.st, c.created)
		if got.State != c.want || !strings.Contains(got.Reason, c.reason) || changed != (c.st.State != got.State) {
			t.Errorf("%s: got %s (%q), changed %v; want %s (%q)", c.name, got.State, got.Reason, changed, c.want, c.reason)
		}
		if changed && got.Stopped.IsZero() {
			t.Errorf("%s: no stop time recorded", c.name)
		}
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	return p.Pid
}

func TestGetRecordsALostSupervisor(t *testing.T) {
	s := testStore(t)
	pid := deadPID(t)
	mustCreate(t, s, "ghost", State{State: Ready, SupervisorPID: pid, SupervisorStart: 1, BootID: readBootID()})
	v, err := s.Get("ghost")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("supervisor died (pid %d)", pid)
	if v.State.State != Failed || v.State.Reason != want || v.Corrected {
		t.Fatalf("got %+v", v)
	}
	// Persisted (the lock was free).
	st, _ := s.ReadState("ghost")
	if st.State != Failed || st.Reason != want {
		t.Errorf("state.json: %+v", st)
	}
	// Stop on it: nothing to do, and no error.
	v, changed, err := s.Stop(context.Background(), "ghost", time.Second)
	if err != nil || changed || v.State.State != Failed {
		t.Errorf("stop of a lost VM: %+v %v %v", v, changed, err)
	}
	// Pause: a state error.
	_, err = s.Pause(context.Background(), "ghost")
	var se *StateError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "it is failed") {
		t.Errorf("pause of a lost VM: %v", err)
	}
	res, err := s.Prune(context.Background())
	if err != nil || len(res.Removed) != 1 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if names, _ := s.Names(); len(names) != 0 {
		t.Errorf("left: %v", names)
	}
}

func TestRotatingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	r, err := openRotating(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 29) + "\n" // 30 bytes
	for range 10 {
		r.Write([]byte(line))
	}
	r.Close()
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	// 300 bytes, 3 lines a file: the last file has 1 line, .1 the 3 before.
	if len(cur) != 30 || len(old) != 90 {
		t.Errorf("console.log %d bytes, console.log.1 %d bytes", len(cur), len(old))
	}
	if err := r.Err(); err != nil {
		t.Error(err)
	}
	// Reopened, it appends and counts what is there.
	r, _ = openRotating(p, 100)
	r.Write([]byte(line))
	r.Close()
	if cur, _ := os.ReadFile(p); len(cur) != 60 {
		t.Errorf("after reopen: %d bytes", len(cur))
	}
}

func TestEventLogLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "events.log")
	l, err := openEventLog(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	l.add(t0, "service-failed", "web", "exit status 1\nlast\tline")
	l.add(t0, "all-ready", "", "")
	l.Close()
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%q", b)
	}
	if lines[0] != "2030-01-02T03:04:05.000000006Z\tservice-failed\tweb\texit status 1 | last line" {
		t.Errorf("line %q", lines[0])
	}
	ev, err := ParseEventLine(lines[1])
	if err != nil || ev.Kind != "all-ready" || ev.Name != "" || ev.Detail != "" || !ev.Time.Equal(t0) {
		t.Errorf("%+v %v", ev, err)
	}
}

func TestDurationJSON(t *testing.T) {
	b, _ := json.Marshal(struct{ D Duration }{Duration(90 * time.Second)})
	if string(b) != `{"D":"1m30s"}` {
		t.Errorf("%s", b)
	}
	var v struct{ D Duration }
	if err := json.Unmarshal([]byte(`{"D":"2s"}`), &v); err != nil || time.Duration(v.D) != 2*time.Second {
		t.Errorf("%v %v", v, err)
	}
	if err := json.Unmarshal([]byte(`{"D":"soon"}`), &v); err == nil {
		t.Error("bad duration accepted")
	}
}
