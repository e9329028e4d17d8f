package testcases

import (
	"context"
	"encoding/json"
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

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/kitsshd"
	"github.com/kitrun/kitrun/hypervisor/fake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// The runner's own tests boot on the shared fake backend (hypervisor/fake)
// through the real VMLauncher: images are really built (for the fake's
// platform), and vm decodes the fake guest's events, names its stages,
// times it out, shuts it down and runs its commands over SSH exactly as
// for a QEMU guest. Only the guest is played: a behaviour scripts one boot.

// behaviour scripts one boot.
type behaviour struct {
	services []string // become ready, in order
	tasks    []string // onboot tasks that succeed
	console  []string // lines written after all-ready
	// bootFail, if set, fails this service before all-ready with this
	// detail (a ready probe that gave up, say).
	bootFail, bootFailDetail string
	// hang: the boot never reaches all-ready; the guest waits to be killed.
	hang bool
	// failService fails a service after all-ready.
	failService string
	// failTask fails an onboot task after the others; the boot stops.
	failTask string
	// haltAfterReady: the guest powers itself off after all-ready.
	haltAfterReady bool
	// files answer kitrun-stat, exec every other command over SSH.
	files map[string]FileInfo
	exec  func(cmd string, stdin []byte) (ExecResult, error)
	// listen: guest ports answered with this greeting; other published
	// ports close each connection at once, as QEMU does when nothing
	// listens in the guest.
	listen map[int]string
	// unclean: the guest ignores the power-off at the end.
	unclean bool
}

// play is the behaviour as a fake guest's script.
func (b behaviour) play(g *fake.Guest) {
	g.Say("[    0.000000] Linux version 6.1.0 (fake)")
	sshPort := g.Image.Manifest.SSH
	for _, p := range g.Machine().Info().Published {
		if p.GuestPort == sshPort {
			continue
		}
		greeting := b.listen[p.GuestPort]
		g.Serve(p.GuestPort, func(c net.Conn) { io.WriteString(c, greeting) })
	}
	if sshPort != 0 && len(g.Spec.Seed) > 0 {
		if err := g.ServeSSH(b.answer); err != nil {
			g.Say("fake: " + err.Error())
		}
	}
	g.Emit(initproto.Event{Kind: initproto.EvInitStart})
	g.Emit(initproto.Event{Kind: initproto.EvModulesLoaded})
	for _, t := range b.tasks {
		g.Emit(initproto.Event{Kind: initproto.EvTaskDone, Name: t})
	}
	one := 1
	if t := b.failTask; t != "" {
		g.Say("[" + t + "] " + t + ": failing")
		g.Emit(initproto.Event{Kind: initproto.EvTaskFailed, Name: t, Status: &one, Detail: "exit status 1", Log: []string{t + ": failing"}})
		b.serve(g)
		return
	}
	if b.hang {
		<-g.Killed()
		return
	}
	for _, s := range b.services {
		g.Emit(initproto.Event{Kind: initproto.EvServiceStart, Name: s})
		g.Say("kitinit: service " + s + " started")
		if s == b.bootFail {
			g.Emit(initproto.Event{Kind: initproto.EvServiceFailed, Name: s, Detail: b.bootFailDetail})
			b.serve(g)
			return
		}
		g.Emit(initproto.Event{Kind: initproto.EvServiceReady, Name: s})
	}
	g.Emit(initproto.Event{Kind: initproto.EvAllReady})
	for _, l := range b.console {
		g.Say(l)
	}
	if s := b.failService; s != "" {
		g.Emit(initproto.Event{Kind: initproto.EvServiceFailed, Name: s, Status: &one, Detail: "exit status 1", Log: []string{s + ": fell over"}})
	}
	if b.haltAfterReady {
		// As kitinit does when a program powers the guest off: its
		// shutdown event (written with all-ready, so the host sees the
		// guest begin before it could ask), then the power-off.
		g.Emit(initproto.Event{Kind: initproto.EvShutdown, Detail: "poweroff requested by the guest"})
		g.Emit(initproto.Event{Kind: initproto.EvShutdownDone})
		g.Say("[    2.000000] reboot: Power down")
		g.Exit(nil)
		return
	}
	b.serve(g)
}

// serve waits for the host's power-off (command or button) and shuts down
// as kitinit does, running the onshutdown task goodbye; an unclean guest
// ignores it and waits to be killed.
func (b behaviour) serve(g *fake.Guest) {
	for {
		var why string
		select {
		case cmd := <-g.Commands():
			if cmd != initproto.CmdPoweroff {
				continue
			}
			why = "poweroff requested by host"
		case <-g.PowerButton():
			why = "power button"
		case <-g.Killed():
			return
		}
		if b.unclean {
			continue
		}
		g.Emit(initproto.Event{Kind: initproto.EvShutdown, Detail: why})
		g.Say("kitinit: shutting down")
		g.Emit(initproto.Event{Kind: initproto.EvTaskDone, Name: "goodbye"})
		g.Emit(initproto.Event{Kind: initproto.EvShutdownDone})
		g.Say("[    3.000000] reboot: Power down")
		g.Exit(nil)
		return
	}
}

// answer runs one command over SSH: kitrun-stat from files, the rest by
// exec.
func (b behaviour) answer(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	if argv, err := kitsshd.Split(cmd); err == nil && len(argv) == 2 && argv[0] == kitsshd.CmdStat {
		fi, ok := b.files[argv[1]]
		fi.Path, fi.Exists = argv[1], ok
		json.NewEncoder(stdout).Encode(fi)
		return 0
	}
	if b.exec == nil {
		fmt.Fprintf(stderr, "%s: not found\n", cmd)
		return 127
	}
	in, _ := io.ReadAll(stdin)
	r, err := b.exec(cmd, in)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stdout.Write(r.Stdout)
	stderr.Write(r.Stderr)
	return r.Status
}

// fakeLauncher boots each test on the fake backend with the behaviour
// behave picks for the nth boot (1-based) of the test named by its spec's
// directory, and keeps count of what ran at once.
type fakeLauncher struct {
	behave func(test string, n int) behaviour
	hold   time.Duration // each launch returns this much later

	mu        sync.Mutex
	boots     map[string]int
	running   int
	memNow    int
	maxMem    int
	maxRun    int
	launchLog []string
	guests    []*fake.Guest
}

func (l *fakeLauncher) Launch(ctx context.Context, req LaunchRequest) (Guest, error) {
	test := filepath.Base(filepath.Dir(req.Spec))
	l.mu.Lock()
	if l.boots == nil {
		l.boots = map[string]int{}
	}
	l.boots[test]++
	b := l.behave(test, l.boots[test])
	l.running++
	l.memNow += req.MemoryMiB
	l.maxRun = max(l.maxRun, l.running)
	l.maxMem = max(l.maxMem, l.memNow)
	l.launchLog = append(l.launchLog, test)
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		l.running--
		l.memNow -= req.MemoryMiB
		l.mu.Unlock()
	}
	backend := &fake.Backend{Script: func(g *fake.Guest) {
		l.mu.Lock()
		l.guests = append(l.guests, g)
		l.mu.Unlock()
		b.play(g)
	}}
	g, err := (&VMLauncher{Backend: backend}).Launch(ctx, req)
	if err != nil {
		done()
		return nil, err
	}
	go func() {
		<-g.Exited()
		done()
	}()
	if l.hold > 0 {
		time.Sleep(l.hold)
	}
	return g, nil
}

// killed says whether every guest was forced off.
func (l *fakeLauncher) killed() (all bool, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.guests {
		select {
		case <-g.Killed():
		default:
			return false, len(l.guests)
		}
	}
	return true, len(l.guests)
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
	// The images are built: the kernel package must be there.
	qemutest.Require(t, arch.Host().Name)
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
