package testcases

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// A fake guest for the runner's own tests: it plays a scripted boot through
// the LaunchRequest's console and event hooks, as the real machine does.

// behaviour scripts one boot.
type behaviour struct {
	services []string // become ready, in order
	tasks    []string // onboot tasks that succeed
	console  []string // lines written after all-ready
	// readyErr, if set, is what WaitReady returns (no all-ready then).
	readyErr error
	// hang: the boot never finishes; WaitReady waits for its timeout.
	hang bool
	// failService fails a service after all-ready.
	failService string
	// failTask fails an onboot task after the others; the boot stops.
	failTask string
	// haltAfterReady: the guest powers itself off after all-ready.
	haltAfterReady bool
	files          map[string]FileInfo
	exec           func(cmd string, stdin []byte) (ExecResult, error)
	// listen: guest ports answered on the host with this greeting.
	listen map[int]string
	// unclean: the power-off at the end fails.
	unclean bool
}

type fakeGuest struct {
	b       behaviour
	req     LaunchRequest
	start   time.Time
	exited  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	stage   string
	exitErr error
	killed  bool
	ports   map[int]string
	lns     []net.Listener
	onExit  func()
}

func (g *fakeGuest) emit(kind, name string, mods ...func(*initproto.Event)) {
	ev := &initproto.Event{Kind: kind, Name: name, Uptime: time.Since(g.start).Seconds()}
	for _, m := range mods {
		m(ev)
	}
	g.mu.Lock()
	g.stage = kind
	if name != "" {
		g.stage += " " + name
	}
	g.mu.Unlock()
	if g.req.OnEvent != nil {
		g.req.OnEvent(vm.Event{Host: time.Since(g.start), Guest: ev})
	}
}

func (g *fakeGuest) say(line string) { io.WriteString(g.req.Console, line+"\n") }

func (g *fakeGuest) boot() {
	g.say("[    0.000000] Linux version 6.1.0 (fake)")
	g.emit(initproto.EvInitStart, "")
	g.emit(initproto.EvModulesLoaded, "")
	for _, t := range g.b.tasks {
		g.emit(initproto.EvTaskDone, t)
	}
	if t := g.b.failTask; t != "" {
		one := 1
		g.say("[" + t + "] " + t + ": failing")
		g.emit(initproto.EvTaskFailed, t, func(e *initproto.Event) {
			e.Status, e.Detail, e.Log = &one, "exit status 1", []string{t + ": failing"}
		})
		return
	}
	if g.b.hang || g.b.readyErr != nil {
		return
	}
	for _, s := range g.b.services {
		g.emit(initproto.EvServiceStart, s)
		g.say("kitinit: service " + s + " started")
		g.emit(initproto.EvServiceReady, s)
	}
	g.emit(initproto.EvAllReady, "")
	for _, l := range g.b.console {
		g.say(l)
	}
	if s := g.b.failService; s != "" {
		one := 1
		g.emit(initproto.EvServiceFailed, s, func(e *initproto.Event) {
			e.Status, e.Detail, e.Log = &one, "exit status 1", []string{s + ": fell over"}
		})
	}
	if g.b.haltAfterReady {
		g.say("[    2.000000] reboot: Power down")
		g.exit(nil)
	}
}

func (g *fakeGuest) exit(err error) {
	g.once.Do(func() {
		g.mu.Lock()
		g.exitErr = err
		g.mu.Unlock()
		for _, l := range g.lns {
			l.Close()
		}
		if g.onExit != nil {
			g.onExit()
		}
		close(g.exited)
	})
}

func (g *fakeGuest) WaitReady(ctx context.Context, timeout time.Duration) error {
	if g.b.readyErr != nil {
		return g.b.readyErr
	}
	if g.b.hang {
		select {
		case <-time.After(timeout):
		case <-ctx.Done():
		}
		return &vm.TimeoutError{Stage: vm.Stage{Kind: g.Stage()}, After: timeout, Console: []string{"fake console line"}}
	}
	return nil
}

func (g *fakeGuest) Stage() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stage
}

func (g *fakeGuest) Exec(ctx context.Context, cmd string, stdin []byte) (ExecResult, error) {
	if g.b.exec == nil {
		return ExecResult{}, errors.New("no SSH in this fake")
	}
	return g.b.exec(cmd, stdin)
}

func (g *fakeGuest) Stat(ctx context.Context, path string) (FileInfo, error) {
	fi, ok := g.b.files[path]
	if !ok {
		return FileInfo{Path: path}, nil
	}
	fi.Path, fi.Exists = path, true
	return fi, nil
}

func (g *fakeGuest) Addr(port int) (string, error) {
	a, ok := g.ports[port]
	if !ok {
		return "", fmt.Errorf("guest port %d is not published", port)
	}
	return a, nil
}

func (g *fakeGuest) Shutdown(ctx context.Context, grace time.Duration) error {
	select {
	case <-g.exited:
		return nil
	default:
	}
	g.emit(initproto.EvShutdown, "", func(e *initproto.Event) { e.Detail = "poweroff requested by host" })
	g.say("kitinit: shutting down")
	g.emit(initproto.EvTaskDone, "goodbye")
	g.emit(initproto.EvShutdownDone, "")
	g.say("[    3.000000] reboot: Power down")
	if g.b.unclean {
		g.exit(errors.New("exit status 1"))
		return errors.New("guest did not power off within " + grace.String())
	}
	g.exit(nil)
	return nil
}

func (g *fakeGuest) Kill() error {
	g.mu.Lock()
	g.killed = true
	g.mu.Unlock()
	g.exit(errors.New("signal: killed"))
	return nil
}

func (g *fakeGuest) Exited() <-chan struct{} { return g.exited }

func (g *fakeGuest) ExitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exitErr
}

// fakeLauncher hands out fake guests; behave picks the behaviour of the
// nth boot (1-based) of the test named by its spec's directory.
type fakeLauncher struct {
	behave func(test string, n int) behaviour

	mu        sync.Mutex
	boots     map[string]int
	running   int
	memNow    int
	maxMem    int
	maxRun    int
	launchLog []string
	guests    []*fakeGuest
	hold      time.Duration // each boot lasts at least this long
}

func (l *fakeLauncher) Launch(ctx context.Context, req LaunchRequest) (Guest, error) {
	test := filepath.Base(filepath.Dir(req.Spec))
	l.mu.Lock()
	if l.boots == nil {
		l.boots = map[string]int{}
	}
	l.boots[test]++
	n := l.boots[test]
	l.running++
	l.memNow += req.MemoryMiB
	l.maxRun = max(l.maxRun, l.running)
	l.maxMem = max(l.maxMem, l.memNow)
	l.launchLog = append(l.launchLog, test)
	l.mu.Unlock()
	b := l.behave(test, n)
	g := &fakeGuest{b: b, req: req, start: time.Now(), exited: make(chan struct{}), ports: map[int]string{}}
	for _, p := range req.Publish {
		greeting := b.listen[p]
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		g.lns = append(g.lns, ln)
		g.ports[p] = ln.Addr().String()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if greeting == "" {
					c.Close() // as QEMU does when nothing listens in the guest
					continue
				}
				io.WriteString(c, greeting)
				c.Close()
			}
		}()
	}
	g.onExit = func() {
		l.mu.Lock()
		l.running--
		l.memNow -= req.MemoryMiB
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.guests = append(l.guests, g)
	l.mu.Unlock()
	g.boot()
	if l.hold > 0 {
		time.Sleep(l.hold)
	}
	return g, nil
}

// A cases tree written by a test.

// repoFile is a path in the repository, for specs that build programs.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// specFor is a valid spec with the given services (hello each), onboot
// tasks and onshutdown task goodbye.
func specFor(t *testing.T, network bool, services []string, tasks []string) string {
	hello := repoFile(t, "examples/cmd/hello")
	demo := repoFile(t, "examples/cmd/demo")
	var b strings.Builder
	b.WriteString("version: 1\nkernel: {package: linux-image-cloud}\n")
	if network {
		b.WriteString("network: {mode: auto}\n")
	}
	b.WriteString("onshutdown:\n  - {name: goodbye, go: " + demo + ", args: [check, /etc/hostname, x]}\n")
	if len(tasks) > 0 {
		b.WriteString("onboot:\n")
		for _, n := range tasks {
			fmt.Fprintf(&b, "  - {name: %s, go: %s, args: [check, /etc/hostname, x]}\n", n, demo)
		}
	}
	if len(services) > 0 {
		b.WriteString("services:\n")
		for i, n := range services {
			fmt.Fprintf(&b, "  - {name: %s, go: %s, install: /usr/bin/hello%d}\n", n, hello, i)
		}
	}
	return b.String()
}

// writeTree writes files (path → content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// runFake runs the tree with a fake launcher and returns the summary and
// what the run printed.
func runFake(t *testing.T, dir string, l *fakeLauncher, o Options) (*Summary, string) {
	t.Helper()
	var out strings.Builder
	o.Dir, o.Launcher, o.Out = dir, l, &lockedWriter{w: &out}
	if o.ResultsDir == "" {
		o.ResultsDir = t.TempDir()
	}
	if o.MemBudgetMiB == 0 {
		o.MemBudgetMiB = 4096
	}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	return s, out.String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func resultOf(t *testing.T, s *Summary, name string) *Result {
	t.Helper()
	for _, r := range s.Results {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no result for %s among %d", name, len(s.Results))
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
