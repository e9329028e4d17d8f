package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// buildKitrun compiles the real binary, as users run it.
func buildKitrun(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kitrun")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestKill9LeavesNoQEMU kills kitrun with SIGKILL — no handler runs — while
// its VM is up, and checks that QEMU dies with it.
func TestKill9LeavesNoQEMU(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	spec := filepath.Join(qemutest.RepoRoot(t), "examples", "minimal.yml")
	cmd := exec.Command(bin, "run", spec, "--accel", "tcg", "--console-log", filepath.Join(t.TempDir(), "console.log"))
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

// TestRunUntilReadyExitCodes runs the CLI end to end and checks the
// documented exit codes for success and a build error.
func TestRunUntilReadyExitCodes(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	root := qemutest.RepoRoot(t)
	out, err := exec.Command(bin, "run", filepath.Join(root, "examples", "minimal.yml"), "--until-ready", "--accel", "tcg").CombinedOutput()
	if err != nil {
		t.Fatalf("kitrun run --until-ready: %v\n%s", err, out)
	}
	for _, want := range []string{"all-ready", "service-ready hello", "powered off cleanly"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("version: 1\nkernel: {package: linux-image-cloud}\nservices:\n  - name: x\n    command: /nope\n    restrat: always\n"), 0o644)
	out, err = exec.Command(bin, "build", bad, "-o", t.TempDir()).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("build of a bad spec: %v, want exit 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "bad.yml:6:5: unknown key \"restrat\"") {
		t.Errorf("error does not point at the bad key:\n%s", out)
	}
}
