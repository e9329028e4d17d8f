package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestConsoleLogFullDisk: `kitrun run --console-log` onto a full disk
// (/dev/full fails every write with ENOSPC) says the log is lost and exits
// 1, although the guest did fine.
func TestConsoleLogFullDisk(t *testing.T) {
	qemutest.Require(t, "x86_64")
	if runtime.GOOS != "linux" {
		t.Skip("/dev/full is Linux's")
	}
	bin := buildKitrun(t)
	spec := filepath.Join(qemutest.RepoRoot(t), "examples", "minimal.yml")
	out, err := exec.Command(bin, "run", spec, "--until-ready", "--accel", "tcg", "--console-log", "/dev/full").CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"powered off cleanly", "kitrun: writing log /dev/full: no space left on device"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchResultsNotSaved: a bench whose results directory cannot be
// written says so, still prints its report, and exits 1.
func TestBenchResultsNotSaved(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	blocker := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(blocker, nil, 0o644)
	cmd := exec.Command(bin, "bench", filepath.Join(qemutest.RepoRoot(t), "examples", "minimal.yml"),
		"--runs", "1", "--warmup", "0", "--accel", "tcg", "--settle", "0s", "--cooldown", "0s",
		"--format", "table", "--results-dir", filepath.Join(blocker, "results"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "kitrun: results not saved: mkdir "+blocker+": not a directory") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "minimal") {
		t.Errorf("no report on stdout:\n%s", stdout.String())
	}
}
