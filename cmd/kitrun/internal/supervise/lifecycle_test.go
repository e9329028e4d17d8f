//go:build linux

package supervise_test

// The VM lifecycle end to end, on real VMs, through the real kitrun binary:
// run -d, ps, logs, console, pause, resume, stop, kill, rm, inspect, prune,
// and crash recovery. VMs are shared between subtests: each boot costs a few
// seconds of TCG.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// buildKitrun compiles the real binary, as users run it.
func buildKitrun(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kitrun")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/kitrun/kitrun/cmd/kitrun").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cli runs kitrun with its own state directory.
type cli struct {
	t     *testing.T
	bin   string
	state string
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s--- stderr ---\n%s", r.code, r.stdout, r.stderr)
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), lifecycle.EnvStateDir+"="+c.state)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("kitrun %v: %v", args, err)
	}
	return r
}

// ok runs kitrun and requires exit 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("kitrun %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs kitrun and requires the exit code and a message.
func (c *cli) fails(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Errorf("kitrun %s: want exit %d and %q; got %s", strings.Join(args, " "), code, want, r)
	}
	return r
}

type psEntry struct {
	Name          string           `json:"name"`
	State         string           `json:"state"`
	Reason        string           `json:"reason"`
	Accel         string           `json:"accel"`
	Ports         []lifecycle.Port `json:"ports"`
	RSSBytes      int64            `json:"rss_bytes"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	SupervisorPID int              `json:"supervisor_pid"`
	QEMUPID       int              `json:"machine_pid"`
	Error         string           `json:"error"`
}

func (c *cli) ps() map[string]psEntry {
	c.t.Helper()
	r := c.ok("ps", "--format", "json")
	var list []psEntry
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		c.t.Fatalf("ps --format json: %v\n%s", err, r.stdout)
	}
	m := map[string]psEntry{}
	for _, e := range list {
		m[e.Name] = e
	}
	return m
}

func (c *cli) vmState(name string) lifecycle.State {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.state, name, lifecycle.StateFile))
	if err != nil {
		c.t.Fatal(err)
	}
	var st lifecycle.State
	if err := json.Unmarshal(b, &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// gone says a process has ended (a zombie waiting for its reaper counts).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(st), ") Z ")
}

func waitGone(t *testing.T, what string, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still running after %s", what, pid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hello(t *testing.T, port int) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatalf("port %d: %v", port, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("port %d: %v", port, err)
	}
	return line
}

func TestLifecycle(t *testing.T) {
	qemutest.Require(t, "x86_64")
	root := qemutest.RepoRoot(t)
	k := &cli{t: t, bin: buildKitrun(t), state: filepath.Join(t.TempDir(), "vms")}
	t.Cleanup(func() {
		// Nothing may be left running, whatever failed.
		for name, e := range k.ps() {
			if lifecycle.Running(e.State) {
				t.Errorf("VM %s still %s at the end", name, e.State)
			}
			k.run("rm", "-f", name)
		}
	})
	web := qemutest.WriteSpec(t, "web", fmt.Sprintf(`
version: 1
name: web
kernel: {package: linux-image-cloud, cmdline: quiet}
network: {mode: user}
files:
  - {path: /etc/bye, contents: "bye\n"}
onshutdown:
  - name: bye
    go: %s
    args: [check, /etc/bye, bye]
    timeout: 5s
services:
  - name: hello
    go: %s
    args: [-addr, ":8080"]
    ready: {tcp: 8080, timeout: 30s}
`, filepath.Join(root, "examples", "cmd", "demo"), filepath.Join(root, "examples", "cmd", "hello")))
	minimal := filepath.Join(root, "examples", "minimal.yml")
	// Build once, so that the parallel starts below find it cached.
	k.ok("build", web, "-o", t.TempDir())

	// Three VMs at once: a and b with distinct published ports, c plain.
	pa, pb := freePort(t), freePort(t)
	starts := map[string][]string{
		"a": {"run", "-d", "--name", "a", "--accel", "tcg", "--publish", fmt.Sprintf("127.0.0.1:%d:8080", pa), web},
		"b": {"run", "-d", "--name", "b", "--accel", "tcg", "--publish", fmt.Sprintf("%d:8080", pb), web},
		"c": {"run", "-d", "--name", "c", "--accel", "tcg", minimal},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]result{}
	for name, args := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := k.run(args...)
			mu.Lock()
			results[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	for name, r := range results {
		if r.code != 0 || strings.TrimSpace(r.stdout) != name || !strings.Contains(r.stderr, "all-ready") {
			t.Fatalf("run -d %s: %s", name, r)
		}
	}

	t.Run("ps shows them ready", func(t *testing.T) {
		ps := k.ps()
		for _, name := range []string{"a", "b", "c"} {
			e := ps[name]
			if e.State != lifecycle.Ready || e.Accel != "tcg" || e.RSSBytes < 50<<20 || e.UptimeSeconds <= 0 || e.SupervisorPID == 0 || e.QEMUPID == 0 {
				t.Errorf("%s: %+v", name, e)
			}
		}
		if p := ps["b"].Ports; len(p) != 1 || p[0] != (lifecycle.Port{HostAddr: "127.0.0.1", HostPort: pb, GuestPort: 8080}) {
			t.Errorf("b's ports: %+v", p)
		}
		table := k.ok("ps").stdout
		for _, want := range []string{"NAME", "STATE", "ARCH", "ACCEL", "UPTIME", "PORTS", "MEMORY", fmt.Sprintf("127.0.0.1:%d->8080", pa), "MiB"} {
			if !strings.Contains(table, want) {
				t.Errorf("ps table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("both published ports answer", func(t *testing.T) {
		for _, p := range []int{pa, pb} {
			if got := hello(t, p); got != "hello from web\n" {
				t.Errorf("port %d: %q", p, got)
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		out := k.ok("logs", "a").stdout
		for _, want := range []string{"kitinit: started", "service hello ready"} {
			if !strings.Contains(out, want) {
				t.Errorf("console lacks %q:\n%s", want, out)
			}
		}
		events := k.ok("logs", "--events", "a").stdout
		if !strings.Contains(events, "\tall-ready\t") || !strings.Contains(events, "\tstate\tready\t") {
			t.Errorf("events:\n%s", events)
		}
	})

	t.Run("name clash", func(t *testing.T) {
		k.fails(21, `a VM named "a" already exists`, "run", "-d", "--name", "a", "--accel", "tcg", minimal)
		k.fails(1, "bad VM name", "run", "-d", "--name", "Bad Name", minimal)
	})

	t.Run("unknown name", func(t *testing.T) {
		k.fails(20, `no VM named "nope"; VMs: a, b, c`, "stop", "nope")
		k.fails(20, `no VM named "nope"`, "inspect", "nope")
		k.fails(20, `no VM named "nope"`, "logs", "nope")
	})

	t.Run("pause and resume", func(t *testing.T) {
		k.ok("pause", "a")
		if e := k.ps()["a"]; e.State != lifecycle.Paused {
			t.Errorf("ps after pause: %+v", e)
		}
		var in struct {
			Live *lifecycle.Live `json:"live"`
		}
		json.Unmarshal([]byte(k.ok("inspect", "a").stdout), &in)
		if in.Live == nil || in.Live.QEMUStatus != "paused" {
			t.Errorf("inspect after pause: %+v", in.Live)
		}
		k.fails(23, "kitrun resume a", "pause", "a")
		k.ok("resume", "a")
		json.Unmarshal([]byte(k.ok("inspect", "a").stdout), &in)
		if in.Live == nil || in.Live.QEMUStatus != "running" || in.Live.State.State != lifecycle.Ready {
			t.Errorf("inspect after resume: %+v", in.Live)
		}
		if got := hello(t, pa); got != "hello from web\n" {
			t.Errorf("after resume: %q", got)
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		// A console attached meanwhile sees the shutdown and ends with the VM.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		attach := exec.CommandContext(ctx, k.bin, "console", "a")
		attach.Env = append(os.Environ(), lifecycle.EnvStateDir+"="+k.state)
		var attachOut strings.Builder
		attach.Stdout = &attachOut
		if err := attach.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		r := k.ok("stop", "a", "--timeout", "30s")
		if !strings.Contains(r.stdout, "a stopped in") {
			t.Errorf("stop: %s", r)
		}
		if err := attach.Wait(); err != nil {
			t.Errorf("console: %v", err)
		}
		if !strings.Contains(attachOut.String(), "kitinit: shutdown done") {
			t.Errorf("console did not show the shutdown:\n%s", attachOut.String())
		}
		st := k.vmState("a")
		if st.State != lifecycle.Stopped || st.Reason != "stopped by kitrun stop" || st.ShutdownSeconds <= 0 || st.Stopped.IsZero() || st.Forced {
			t.Errorf("state after stop: %+v", st)
		}
		events := k.ok("logs", "--events", "a").stdout
		for _, want := range []string{"\ttask-done\tbye\t", "\tshutdown-done\t", "\tstate\tstopped\t"} {
			if !strings.Contains(events, want) {
				t.Errorf("events lack %q:\n%s", want, events)
			}
		}
		waitGone(t, "qemu", k.ps()["a"].QEMUPID, 5*time.Second)
		if _, err := os.Stat(filepath.Join(k.state, "a", lifecycle.ControlSocket)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("control socket left: %v", err)
		}
		// Stopping a stopped VM says so, and succeeds; pausing it cannot.
		if r := k.ok("stop", "a"); !strings.Contains(r.stdout, "a is already stopped") {
			t.Errorf("second stop: %s", r)
		}
		k.fails(23, "cannot pause VM a: it is stopped", "pause", "a")
		k.fails(23, "cannot attach to VM a", "console", "a")
	})

	t.Run("rm", func(t *testing.T) {
		k.fails(23, "kitrun rm -f c", "rm", "c") // running
		k.ok("rm", "a")
		if _, ok := k.ps()["a"]; ok {
			t.Error("a still listed")
		}
		if _, err := os.Stat(filepath.Join(k.state, "a")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a's state dir: %v", err)
		}
		k.fails(20, `no VM named "a"; VMs: b, c`, "inspect", "a")
	})

	t.Run("console in a terminal", func(t *testing.T) {
		cmd := exec.Command(k.bin, "console", "c")
		cmd.Env = append(os.Environ(), lifecycle.EnvStateDir+"="+k.state)
		tty, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		var out qemutest.Buffer
		go io.Copy(&out, tty)
		waitFor(t, func() bool { return strings.Contains(out.String(), "Ctrl-] detaches") })
		tty.Write([]byte("echo typed\r"))
		tty.Write([]byte{0x1d}) // Ctrl-]
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("console: %v\n%s", err, out.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("Ctrl-] did not detach:\n%s", out.String())
		}
		waitFor(t, func() bool { return strings.Contains(out.String(), "detached from c") })
		if e := k.ps()["c"]; e.State != lifecycle.Ready {
			t.Errorf("c after a detach: %+v", e)
		}
	})

	t.Run("kill -9 of the supervisor", func(t *testing.T) {
		e := k.ps()["b"]
		if err := syscall.Kill(e.SupervisorPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, "qemu after its supervisor's kill -9", e.QEMUPID, 5*time.Second)
		b := k.ps()["b"]
		if want := fmt.Sprintf("supervisor died (pid %d)", e.SupervisorPID); b.State != lifecycle.Failed || !strings.HasPrefix(b.Reason, want) {
			t.Errorf("ps: %+v, want failed: %s", b, want)
		}
		if table := k.ok("ps").stdout; !strings.Contains(table, "supervisor died") {
			t.Errorf("ps table:\n%s", table)
		}
		if r := k.ok("stop", "b"); !strings.Contains(r.stdout, "b is already failed (supervisor died") {
			t.Errorf("stop: %s", r)
		}
	})

	t.Run("kill -9 of qemu", func(t *testing.T) {
		e := k.ps()["c"]
		if err := syscall.Kill(e.QEMUPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, "the supervisor after qemu's death", e.SupervisorPID, 10*time.Second)
		c := k.ps()["c"]
		if c.State != lifecycle.Failed || c.Reason != "the machine exited: signal: killed" {
			t.Errorf("ps: %+v", c)
		}
	})

	t.Run("kill", func(t *testing.T) {
		r := k.ok("kill", "c")
		if !strings.Contains(r.stdout, "c is already failed") {
			t.Errorf("kill of a dead VM: %s", r)
		}
	})

	t.Run("stale pids", func(t *testing.T) {
		// A state file written by hand: a supervisor pid that is no
		// longer alive, and one alive but another process (ours).
		dead := exec.Command("true")
		dead.Run()
		ghost(t, k.state, "ghost", dead.Process.Pid, 0)
		ghost(t, k.state, "reused", os.Getpid(), 1) // wrong start time
		ps := k.ps()
		if e := ps["ghost"]; e.State != lifecycle.Failed || e.Reason != fmt.Sprintf("supervisor died (pid %d)", dead.Process.Pid) {
			t.Errorf("ghost: %+v", e)
		}
		if e := ps["reused"]; e.State != lifecycle.Failed || !strings.Contains(e.Reason, "now another process's") {
			t.Errorf("reused: %+v", e)
		}
	})

	t.Run("corrupt state", func(t *testing.T) {
		ghost(t, k.state, "broken", 0, 0)
		os.WriteFile(filepath.Join(k.state, "broken", lifecycle.StateFile), []byte(`{"state": "rea`), 0o644)
		r := k.ok("ps")
		if !strings.Contains(r.stdout, "broken") || !strings.Contains(r.stdout, "unknown") || !strings.Contains(r.stderr, "state.json is unreadable") {
			t.Errorf("ps: %s", r)
		}
		k.fails(22, "state.json is unreadable (not valid JSON", "inspect", "broken")
		k.fails(22, "kitrun rm -f broken", "rm", "broken")
		k.ok("rm", "-f", "broken")
	})

	t.Run("prune", func(t *testing.T) {
		r := k.ok("prune")
		for _, name := range []string{"b", "c", "ghost", "reused"} {
			if !strings.Contains(r.stdout, name+"\n") {
				t.Errorf("prune did not remove %s: %s", name, r)
			}
		}
		if ps := k.ps(); len(ps) != 0 {
			t.Errorf("left after prune: %v", ps)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ghost writes a VM's state by hand, as if its supervisor had run.
func ghost(t *testing.T, dir, name string, pid int, start uint64) {
	t.Helper()
	store, _ := lifecycle.Open(dir)
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	err := store.Create(lifecycle.Meta{Name: name, Arch: "x86_64", Backend: "qemu", Resources: hypervisor.Resources{Accel: "tcg"}, Created: time.Now()},
		lifecycle.State{State: lifecycle.Ready, SupervisorPID: pid, SupervisorStart: start, BootID: strings.TrimSpace(string(boot)), Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}
