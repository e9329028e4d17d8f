package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
