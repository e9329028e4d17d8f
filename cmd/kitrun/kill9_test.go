//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// kill9TrialsEnv sets how many trials of each kind TestKillNineTrials runs;
// unset, the test is skipped (it boots hundreds of VMs: not for make test).
//
//	KITRUN_KILL9_TRIALS=50 go test -run KillNine -v -timeout 3h ./cmd/kitrun
//
// Each kind runs with each teardown mechanism (see kill9TeardownEnv).
const kill9TrialsEnv = "KITRUN_KILL9_TRIALS"

// kill9KindsEnv, if set, runs only the kinds of trial whose name holds it
// ("mid-boot", "after ready", "supervisor", "test").
const kill9KindsEnv = "KITRUN_KILL9_KINDS"

// kill9TeardownEnv, if set, runs the trials with that teardown mechanism
// only (qemu.TeardownEnv's values); unset, with each.
const kill9TeardownEnv = "KITRUN_KILL9_TEARDOWN"

// TestKillNineTrials is the reliability trial of issue 8: kitrun killed
// with SIGKILL (no handler runs) while it works, many times. After each
// kill it counts the QEMU processes and fixture daemons still running and,
// after the next kitrun start (`kitrun ps`), the temporary files left. All
// counts must be zero. Every kitrun process of the trial gets its own
// TMPDIR, so the census sees only the trial's files and processes (which
// carry TMPDIR in their environment).
func TestKillNineTrials(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(kill9TrialsEnv))
	if n <= 0 {
		t.Skipf("set %s=N to run N kill -9 trials of each kind", kill9TrialsEnv)
	}
	qemutest.Require(t, "x86_64")
	h := newTrialHost(t, buildKitrun(t))
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d, %d trials of each kind", seed, n)

	kinds := []struct {
		name string
		kill func(t *testing.T, h *trialHost, rng *rand.Rand, i int)
	}{
		{"run, mid-boot", func(t *testing.T, h *trialHost, rng *rand.Rand, i int) {
			h.killRun(t, "qemu pid ", time.Duration(rng.IntN(1500))*time.Millisecond)
		}},
		{"run, after ready", func(t *testing.T, h *trialHost, rng *rand.Rand, i int) {
			h.killRun(t, "all-ready", 0)
		}},
		{"run -d supervisor", func(t *testing.T, h *trialHost, rng *rand.Rand, i int) {
			// Even trials: killed once ready; odd: while the VM boots.
			h.killSupervisor(t, fmt.Sprintf("vm%d", i), i%2 == 1, time.Duration(rng.IntN(1500))*time.Millisecond)
		}},
		{"test, mid-run", func(t *testing.T, h *trialHost, rng *rand.Rand, i int) {
			h.killTest(t, i, time.Duration(300+rng.IntN(19700))*time.Millisecond)
		}},
	}
	// Each kind with each teardown mechanism: Linux's parent-death
	// signal and the portable watchdog macOS and Windows use.
	modes := []string{qemu.TeardownPdeathsig, qemu.TeardownWatchdog}
	if m := os.Getenv(kill9TeardownEnv); m != "" {
		modes = []string{m}
	}
	base := h.env
	for _, mode := range modes {
		h.env = append(slices.Clip(base), qemu.TeardownEnv+"="+mode)
		t.Run(mode, func(t *testing.T) {
			type tally struct {
				trials, qemuLeft, daemonsLeft, tempLeft int
				took                                    time.Duration
			}
			tallies := make([]tally, len(kinds))
			only := os.Getenv(kill9KindsEnv)
			for k, kind := range kinds {
				if only != "" && !strings.Contains(kind.name, only) {
					continue
				}
				start := time.Now()
				for i := range n {
					kind.kill(t, h, rng, i)
					qemu := h.strayQEMUs(t)
					h.nextStart(t)
					temps := h.tempFiles(t)
					daemons := h.strayProcesses(t)
					if qemu+daemons+len(temps) > 0 {
						t.Errorf("%s, trial %d: %d QEMU, %d daemons left; temp files after the next start: %v", kind.name, i, qemu, daemons, temps)
					}
					tl := &tallies[k]
					tl.trials++
					tl.qemuLeft += qemu
					tl.daemonsLeft += daemons
					tl.tempLeft += len(temps)
					h.reset(t)
				}
				tallies[k].took = time.Since(start)
				tl := tallies[k]
				t.Logf("done: %s, %d trials in %s", kind.name, tl.trials, tl.took.Round(time.Second))
			}
			for k, kind := range kinds {
				tl := tallies[k]
				if tl.trials == 0 {
					continue
				}
				t.Logf("%s: %-18s %3d trials: %d QEMU left, %d fixture daemons left, %d temp files left after the next start (%s)",
					mode, kind.name, tl.trials, tl.qemuLeft, tl.daemonsLeft, tl.tempLeft, tl.took.Round(time.Second))
			}
		})
	}
}

// trialHost is the environment the trial's kitrun processes run in.
type trialHost struct {
	bin, dir, tmp, state, results, cache, spec, cases string
	env                                               []string
}

func newTrialHost(t *testing.T, bin string) *trialHost {
	dir := t.TempDir()
	h := &trialHost{bin: bin, dir: dir, tmp: filepath.Join(dir, "tmp"), state: filepath.Join(dir, "state"),
		results: filepath.Join(dir, "results"), cache: filepath.Join(dir, "cache")}
	for _, d := range []string{h.tmp, h.state, h.results, h.cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The trial's own cache, so that the census sees only the trial's
	// temporary files (other kitrun processes on the host write theirs in
	// the shared cache), sharing only the downloads and unpacked kernels.
	shared := os.Getenv("KITRUN_CACHE")
	if shared == "" {
		home, _ := os.UserHomeDir()
		shared = filepath.Join(home, ".cache", "kitrun")
	}
	for _, d := range []string{"kernels", "kernel-trees", "packages"} {
		if err := os.MkdirAll(filepath.Join(shared, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(shared, d), filepath.Join(h.cache, d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); k != "TMPDIR" && k != "XDG_RUNTIME_DIR" && k != "KITRUN_STATE_DIR" && k != "KITRUN_CACHE" {
			h.env = append(h.env, e)
		}
	}
	h.env = append(h.env, "TMPDIR="+h.tmp, "KITRUN_STATE_DIR="+h.state, "KITRUN_CACHE="+h.cache)
	repo := qemutest.RepoRoot(t)
	hello := filepath.Join(repo, "examples", "cmd", "hello")
	demo := filepath.Join(repo, "examples", "cmd", "demo")
	// SSH makes kitrun write a per-boot initrd and a client key: the
	// most sensitive temporary files it has.
	h.spec = filepath.Join(dir, "sshvm.yml")
	writeFile(t, h.spec, fmt.Sprintf(`version: 1
name: kill9
kernel: {package: linux-image-cloud, cmdline: quiet}
ssh: true
services:
  - name: hello
    go: %s
    args: [-addr, ":8080"]
    ready: {tcp: 8080, timeout: 60s}
`, hello))
	// Cases for `kitrun test`: a group whose setup leaves a daemon, and
	// tests that boot, use SSH and run commands.
	h.cases = filepath.Join(dir, "cases")
	writeFile(t, filepath.Join(h.cases, "g", "group.yml"), "setup: sleep 600 &\nteardown: true\n")
	for i := range 4 {
		c := filepath.Join(h.cases, "g", fmt.Sprintf("%03d_t%d", 10*(i+1), i))
		writeFile(t, filepath.Join(c, "spec.yml"), fmt.Sprintf(`version: 1
name: kill9-t%d
kernel: {package: linux-image-cloud, cmdline: quiet}
ssh: true
onboot:
  - name: install
    go: %s
    args: [check, /etc/hostname, ""]
services:
  - name: hello
    go: %s
    args: [-addr, ":8080"]
    ready: {tcp: 8080, timeout: 60s}
`, i, demo, hello))
		writeFile(t, filepath.Join(c, "test.yml"), "ssh: true\nexpect:\n  - exec: kitrun-ping\n    stdout: pong\n  - tcp: 8080\n")
	}
	// Build the images once, so that trials kill boots, not builds.
	out, err := h.command("build", h.spec, "-o", filepath.Join(dir, "warm")).CombinedOutput()
	if err != nil {
		t.Fatalf("warming the cache: %v\n%s", err, out)
	}
	return h
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *trialHost) command(args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	cmd.Dir = h.dir
	return cmd
}

// startWatching starts cmd with its stderr and stdout merged into lines.
func startWatching(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody listens any more
			}
		}
		close(lines)
	}()
	go func() { cmd.Wait(); w.Close() }()
	return lines
}

// waitLine waits (at most 3 minutes) for a line containing s.
func waitLine(t *testing.T, lines <-chan string, s string) bool {
	t.Helper()
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return false
			}
			if strings.Contains(l, s) {
				return true
			}
		case <-timeout:
			t.Errorf("no %q within 3m", s)
			return false
		}
	}
}

func kill9(t *testing.T, p *os.Process) {
	t.Helper()
	p.Signal(syscall.SIGKILL)
	waitExit(t, p.Pid)
}

// waitExit waits (bounded) until pid is gone or a zombie.
func waitExit(t *testing.T, pid int) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || bytes.Contains(st, []byte(") Z ")) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("pid %d still runs 30s after SIGKILL", pid)
}

// killRun kills `kitrun run` delay after its output shows marker.
func (h *trialHost) killRun(t *testing.T, marker string, delay time.Duration) {
	cmd := h.command("run", h.spec, "--accel", "tcg", "--console-log", filepath.Join(h.dir, "console.log"))
	lines := startWatching(t, cmd)
	if waitLine(t, lines, marker) {
		time.Sleep(delay)
	}
	kill9(t, cmd.Process)
}

// killSupervisor starts `kitrun run -d` and kills its supervisor, either
// delay after it appears (mid-boot) or once the VM is ready.
func (h *trialHost) killSupervisor(t *testing.T, name string, midBoot bool, delay time.Duration) {
	cmd := h.command("run", "-d", "--name", name, "--accel", "tcg", h.spec)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	supervisor, exited := 0, false
	deadline := time.After(3 * time.Minute)
	for !exited && (supervisor == 0 || !midBoot) {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run -d %s: %v\n%s", name, err, out.String())
			}
			supervisor, exited = h.supervisorPID(name), true
			continue
		case <-deadline:
			t.Fatalf("run -d %s: no supervisor within 3m\n%s", name, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if midBoot {
			supervisor = h.supervisorPID(name)
		}
	}
	if supervisor == 0 {
		t.Errorf("run -d %s: no supervisor pid recorded", name)
		return
	}
	time.Sleep(delay)
	syscall.Kill(supervisor, syscall.SIGKILL)
	waitExit(t, supervisor)
	if exited {
		return
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Errorf("run -d %s: the foreground did not end within 3m of its supervisor's death", name)
	}
}

func (h *trialHost) supervisorPID(name string) int {
	b, err := os.ReadFile(filepath.Join(h.state, name, "state.json"))
	if err != nil {
		return 0
	}
	var st struct {
		PID int `json:"supervisor_pid"`
	}
	json.Unmarshal(b, &st)
	return st.PID
}

// killTest kills `kitrun test` after delay.
func (h *trialHost) killTest(t *testing.T, i int, delay time.Duration) {
	cmd := h.command("test", h.cases, "-j", "2", "--accel", "tcg", "--results", filepath.Join(h.results, strconv.Itoa(i)))
	lines := startWatching(t, cmd)
	go func() {
		for range lines {
		}
	}()
	time.Sleep(delay)
	kill9(t, cmd.Process)
	t.Logf("test trial %d: killed after %s", i, delay)
}

// strayQEMUs counts the QEMU processes of the trial that outlive the
// killed kitrun by more than 15 s, and kills them so the next trial starts
// clean.
func (h *trialHost) strayQEMUs(t *testing.T) int {
	deadline := time.Now().Add(15 * time.Second)
	for {
		qemu, _ := h.trialProcesses()
		if len(qemu) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			for _, p := range qemu {
				t.Logf("stray QEMU %d", p)
				syscall.Kill(p, syscall.SIGKILL)
			}
			return len(qemu)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// strayProcesses counts (and kills) the trial's other processes still
// running after the next start, which should have ended them: the test
// group's fixture daemon.
func (h *trialHost) strayProcesses(t *testing.T) int {
	// A process killed by the sweep may take a moment to be scheduled
	// and exit on a loaded host.
	_, other := h.trialProcesses()
	for deadline := time.Now().Add(5 * time.Second); len(other) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		_, other = h.trialProcesses()
	}
	for _, p := range other {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		t.Logf("stray process %d: %s", p, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		syscall.Kill(p, syscall.SIGKILL)
	}
	return len(other)
}

// trialProcesses lists the live processes whose environment carries the
// trial's TMPDIR: QEMUs, and others.
func (h *trialHost) trialProcesses() (qemu, other []int) {
	marker := []byte("\x00TMPDIR=" + h.tmp + "\x00")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), marker) {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || bytes.Contains(st, []byte(") Z ")) {
			continue
		}
		if bytes.Contains(st, []byte("(qemu-system")) {
			qemu = append(qemu, pid)
		} else {
			other = append(other, pid)
		}
	}
	return qemu, other
}

// nextStart is the next kitrun start: a cheap command, which sweeps.
func (h *trialHost) nextStart(t *testing.T) {
	if out, err := h.command("ps").CombinedOutput(); err != nil {
		t.Errorf("kitrun ps: %v\n%s", err, out)
	}
}

// tempFiles lists what the trial's kitrun processes left that is not a
// result: anything in TMPDIR but the (empty) runtime base, temporary names
// in the cache, results and state directories.
func (h *trialHost) tempFiles(t *testing.T) []string {
	var left []string
	base := "kitrun-" + strconv.Itoa(os.Getuid())
	ents, _ := os.ReadDir(h.tmp)
	for _, e := range ents {
		p := filepath.Join(h.tmp, e.Name())
		if e.Name() != base {
			left = append(left, p)
			continue
		}
		inner, _ := os.ReadDir(p)
		for _, e := range inner {
			left = append(left, filepath.Join(p, e.Name()))
		}
	}
	isTemp := func(name string) bool {
		return strings.Contains(name, ".tmp") || strings.Contains(name, ".old-") || strings.HasPrefix(name, ".creating-")
	}
	for _, root := range []string{h.cache, h.results, h.state} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if isTemp(d.Name()) {
				left = append(left, p)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
	}
	return left
}

// reset removes the detached VMs of a supervisor trial (their state is
// kept by design until `kitrun rm`) and the test results.
func (h *trialHost) reset(t *testing.T) {
	ents, _ := os.ReadDir(h.state)
	for _, e := range ents {
		if e.IsDir() {
			if out, err := h.command("rm", "-f", e.Name()).CombinedOutput(); err != nil {
				t.Errorf("kitrun rm -f %s: %v\n%s", e.Name(), err, out)
			}
		}
	}
	os.RemoveAll(h.results)
	os.MkdirAll(h.results, 0o755)
}

// TestKill9LeavesNoQEMU kills kitrun with SIGKILL — no handler runs — while
// its VM is up, and checks that QEMU dies with it: with Linux's
// parent-death signal and with the portable watchdog macOS and Windows use.
func TestKill9LeavesNoQEMU(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	for _, mode := range []string{qemu.TeardownPdeathsig, qemu.TeardownWatchdog} {
		t.Run(mode, func(t *testing.T) { kill9LeavesNoQEMU(t, bin, mode) })
	}
}

func kill9LeavesNoQEMU(t *testing.T, bin, mode string) {
	spec := filepath.Join(qemutest.RepoRoot(t), "examples", "minimal.yml")
	cmd := exec.Command(bin, "run", spec, "--accel", "tcg", "--console-log", filepath.Join(t.TempDir(), "console.log"))
	cmd.Env = append(os.Environ(), qemu.TeardownEnv+"="+mode)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid, ready := 0, false
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(2 * time.Minute)
	for !ready {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("kitrun ended before all-ready")
			}
			t.Log(line)
			if i := strings.Index(line, "qemu pid "); i >= 0 {
				fmt.Sscanf(line[i:], "qemu pid %d", &pid)
			}
			if strings.HasPrefix(line, "all-ready") {
				ready = true
			}
		case <-timeout:
			t.Fatal("no all-ready within 2m")
		}
	}
	if pid == 0 {
		t.Fatal("kitrun did not print QEMU's pid")
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("qemu pid %d not running before the kill: %v", pid, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	go io.Copy(io.Discard, stderr)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie still answers kill(0) until reaped by init; count a
		// zombie as gone.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("qemu pid %d outlived kitrun's kill -9", pid)
}
