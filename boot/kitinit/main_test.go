//go:build linux

package kitinit

import (
	"bufio"
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
	"golang.org/x/sys/unix"
)

// The test binary doubles as a helper program (KITINIT_HELPER=mode).
const helperEnv = "KITINIT_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode, os.Args[1:])
		return
	}
	// Emulate PID 1: orphans of our children are re-parented to us, and
	// the Reaper must reap them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	SharedReaper()
	os.Exit(m.Run())
}

// runHelper: "tcp-listen ADDR DELAY" and "unix-listen PATH DELAY" listen
// after DELAY and accept for ever.
func runHelper(mode string, args []string) {
	switch mode {
	case "main":
		Main() // PID 1 in a VM smoke test; otherwise refuses
		return
	case "echo":
		fmt.Println(strings.Join(args, " "))
		return
	}
	delay, _ := time.ParseDuration(args[1])
	time.Sleep(delay)
	network := map[string]string{"tcp-listen": "tcp", "unix-listen": "unix"}[mode]
	l, err := net.Listen(network, args[0])
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Close()
	}
}

// helper is an Exec running the test binary as helper.
func helper(t *testing.T, mode string, args ...string) initproto.Exec {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return initproto.Exec{Path: exe, Args: args, Env: map[string]string{helperEnv: mode}}
}

func sh(script string) initproto.Exec {
	return initproto.Exec{Path: "/bin/sh", Args: []string{"-c", script}}
}

func dur(d time.Duration) initproto.Duration { return initproto.Duration(d) }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fakeSystem records what kitinit asks of the system.
type fakeSystem struct {
	mu      sync.Mutex
	calls   []string
	channel io.ReadWriter
	reboot  chan int
	// atReboot runs when Reboot is called (to check state at that time).
	atReboot func()
}

func (f *fakeSystem) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeSystem) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSystem) MountFilesystems() error       { f.record("mount"); return nil }
func (f *fakeSystem) LoadModule(path string) error  { f.record("module " + path); return nil }
func (f *fakeSystem) SetHostname(name string) error { f.record("hostname " + name); return nil }
func (f *fakeSystem) LoopbackUp() error             { f.record("lo"); return nil }
func (f *fakeSystem) KillAll(sig unix.Signal)       { f.record("killall " + unix.SignalName(sig)) }
func (f *fakeSystem) Sync()                         { f.record("sync") }
func (f *fakeSystem) LockConsole() error            { f.record("lock console"); return nil }
func (f *fakeSystem) UnpackSeed(src string) error   { f.record("seed " + src); return nil }
func (f *fakeSystem) Reseed(r initproto.Reseed) error {
	f.record(fmt.Sprintf("reseed time=%d entropy=%d files=%d", r.UnixNano, len(r.Entropy), len(r.Files)))
	return nil
}
func (f *fakeSystem) OpenChannel(path string) (io.ReadWriter, error) {
	f.record("channel " + path)
	return f.channel, nil
}
func (f *fakeSystem) ConfigureNetwork(n *initproto.Network, report func(error)) (string, error) {
	f.record("network " + n.Address)
	return "eth0 " + n.Address + " via " + n.Gateway, nil
}
func (f *fakeSystem) Reboot(cmd int) error {
	f.record(fmt.Sprintf("reboot %#x", cmd))
	if f.atReboot != nil {
		f.atReboot()
	}
	f.reboot <- cmd
	return nil
}

// syncBuffer is a console.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness runs kitinit in the test process with a fake system, the event
// channel on a socketpair.
type harness struct {
	t       *testing.T
	sys     *fakeSystem
	host    *os.File
	console *syncBuffer
	dir     string // scratch directory
	logDir  string
	events  chan initproto.Event
	mu      sync.Mutex
	seen    []initproto.Event
	done    chan error
	guest   *os.File
	eof     chan struct{} // the event reader has read everything
	ended   bool          // Run has returned
}

const waitLong = 30 * time.Second // generous: only a failing test waits this long

func start(t *testing.T, cfg *initproto.Config, opt ...func(*Options)) *harness {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest, host := os.NewFile(uintptr(fds[0]), "guest"), os.NewFile(uintptr(fds[1]), "host")
	h := &harness{
		t:       t,
		sys:     &fakeSystem{channel: guest, reboot: make(chan int, 1)},
		host:    host,
		console: &syncBuffer{},
		dir:     t.TempDir(),
		events:  make(chan initproto.Event, 1000),
		done:    make(chan error, 1),
		guest:   guest,
		eof:     make(chan struct{}),
	}
	h.logDir = filepath.Join(h.dir, "log")
	cmdline := filepath.Join(h.dir, "cmdline")
	line := "console=ttyS0 kitrun.channel=/dev/ttyS1 quiet\n"
	if cfg != nil && len(cfg.Available) > 0 {
		line = "console=ttyS0 kitrun.channel=/dev/ttyS1 kitrun.chanmods=virtio_console,virtio-pci kitrun.latemods=pvpanic-mmio quiet\n"
	}
	os.WriteFile(cmdline, []byte(line), 0o644)
	o := Options{
		System:      h.sys,
		Config:      cfg,
		CmdlinePath: cmdline,
		Console:     h.console,
		LogDir:      h.logDir,
		InputDir:    filepath.Join(h.dir, "input"),
		StopTimeout: time.Second,
	}
	for _, f := range opt {
		f(&o)
	}
	go func() {
		defer close(h.eof)
		sc := bufio.NewScanner(host)
		for sc.Scan() {
			ev, err := initproto.DecodeEvent(sc.Text())
			if err != nil {
				t.Errorf("channel: %v", err)
				continue
			}
			h.mu.Lock()
			h.seen = append(h.seen, ev)
			h.mu.Unlock()
			h.events <- ev
		}
	}()
	go func() { h.done <- Run(o) }()
	t.Cleanup(func() {
		if !h.ended {
			h.send("poweroff")
			h.waitDone()
		}
		host.Close()
		if t.Failed() {
			t.Logf("console:\n%s", h.console.String())
		}
	})
	return h
}

func (h *harness) send(cmd string) {
	if _, err := h.host.WriteString(cmd + "\n"); err != nil {
		h.t.Fatalf("send %s: %v", cmd, err)
	}
}

// wait returns the next event of kind (and name, if not empty), skipping
// others.
func (h *harness) wait(kind, name string) initproto.Event {
	h.t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case ev := <-h.events:
			if ev.Kind == kind && (name == "" || ev.Name == name) {
				return ev
			}
		case <-deadline:
			h.t.Fatalf("no %s %s event within %v; events: %v", kind, name, waitLong, h.kinds())
		}
	}
}

// waitDone waits until Run has returned (after the fake reboot) and every
// event it wrote has been read.
func (h *harness) waitDone() int {
	h.t.Helper()
	select {
	case cmd := <-h.sys.reboot:
		select {
		case <-h.done:
		case <-time.After(waitLong):
			h.t.Fatal("Run did not return after reboot")
		}
		h.ended = true
		h.guest.Close() // Run writes no more: let the reader see the end
		select {
		case <-h.eof:
		case <-time.After(waitLong):
			h.t.Fatal("event reader did not finish")
		}
		return cmd
	case <-time.After(waitLong):
		h.t.Fatalf("no reboot within %v; events: %v", waitLong, h.kinds())
	}
	return 0
}

// kinds lists the events seen so far as "kind name".
func (h *harness) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.seen {
		s := ev.Kind
		if ev.Name != "" {
			s += " " + ev.Name
		}
		out = append(out, s)
	}
	return out
}

func (h *harness) count(kind, name string) int {
	n := 0
	for _, s := range h.kinds() {
		if s == strings.TrimSpace(kind+" "+name) {
			n++
		}
	}
	return n
}

// index is the position of the first "kind name" event, -1 if none.
func (h *harness) index(kindName string) int {
	for i, s := range h.kinds() {
		if s == kindName {
			return i
		}
	}
	return -1
}

// before checks that each event in order was seen, in that order.
func (h *harness) before(order ...string) {
	h.t.Helper()
	last, prev := -1, ""
	for _, kn := range order {
		i := h.index(kn)
		if i < 0 {
			h.t.Errorf("no %q event; events: %v", kn, h.kinds())
			return
		}
		if i < last {
			h.t.Errorf("%q came before %q; events: %v", kn, prev, h.kinds())
		}
		last, prev = i, kn
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone reports whether pid no longer exists, not even as a zombie.
func gone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return os.IsNotExist(err)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	eventually(t, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// zombieChildren lists our children that are zombies.
func zombieChildren() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == me {
			out = append(out, pid)
		}
	}
	return out
}
