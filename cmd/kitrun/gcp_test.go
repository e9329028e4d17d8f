package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/gcp/gcpfake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestGCPBackendCommands runs `kitrun run`, `bench` and `test` with
// --backend gcp against the fakes (Cloud Storage and a Compute Engine
// that boots the image with QEMU, in this test process; no credentials:
// the endpoints are on loopback), a detached run stopped with `kitrun
// stop`, a run killed with SIGKILL whose instance the next kitrun start
// deletes, then `kitrun cloud sweep` removes the images they left. Five
// boots under TCG.
func TestGCPBackendCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three VMs")
	}
	qemutest.Require(t, "x86_64")
	f := gcpfake.Start(t, gcpfake.Options{Boot: true})
	bin := buildKitrun(t)
	root := qemutest.RepoRoot(t)
	var opts []string
	for k, v := range f.BackendOptions() {
		opts = append(opts, "--backend-opt", k+"="+v)
	}
	kitrun := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}

	minimal := filepath.Join(root, "examples", "minimal.yml")
	out, err := kitrun(append([]string{"run", minimal, "--backend", "gcp", "--format", "gcp", "--until-ready"}, opts...)...)
	t.Logf("kitrun run:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run --backend gcp: %v", err)
	}
	for _, want := range []string{"api-accepted", "running", "all-ready", "powered off cleanly"} {
		if !strings.Contains(out, want) {
			t.Errorf("kitrun run's output lacks %q", want)
		}
	}

	dir := t.TempDir()
	res := filepath.Join(dir, "bench.txt")
	out, err = kitrun(append([]string{"bench", minimal, "--backend", "gcp", "--image-format", "gcp", "--runs", "1", "--warmup", "0",
		"--settle", "0s", "--format", "benchfmt", "-o", res, "--results-dir", filepath.Join(dir, "results")}, opts...)...)
	t.Logf("kitrun bench:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun bench --backend gcp: %v", err)
	}
	b, _ := os.ReadFile(res)
	t.Logf("benchfmt:\n%s", b)
	for _, want := range []string{"boot.api_accepted", "boot.instance_running", "boot.first_output", "boot.all_ready"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bench results lack %s", want)
		}
	}

	out, err = kitrun(append([]string{"test", filepath.Join(root, "testcases", "cases", "010_readiness", "010_tcp"),
		"--backend", "gcp", "--format", "gcp", "--results", filepath.Join(dir, "test-results")}, opts...)...)
	t.Logf("kitrun test:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend gcp: %v", err)
	}
	if n := f.Calls("images.insert"); n != 2 {
		// minimal.yml's gcp disk once for run and bench; the test case's once.
		t.Errorf("%d images made, want 2 (one per disk digest)", n)
	}

	// A case whose boot needs per-boot files (SSH keys): the seed reaches
	// the guest through the platform's instance metadata, and the
	// harness's SSH client pins the host key it delivered.
	out, err = kitrun(append([]string{"test", filepath.Join(root, "testcases", "cases", "040_ssh", "010_exec"),
		"--backend", "gcp", "--format", "gcp", "--results", filepath.Join(dir, "ssh-results")}, opts...)...)
	t.Logf("kitrun test (ssh):\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend gcp of an SSH case: %v", err)
	}
	if r := f.Transient(); len(r) != 0 {
		t.Errorf("left after run, bench and test: %v", r)
	}

	// Detached: the supervisor reopens the backend with the recorded
	// options; ps and stop reach the instance through it.
	state := t.TempDir()
	out, err = kitrun(append([]string{"run", "--state-dir", state, "-d", "--name", "gcpweb", minimal, "--backend", "gcp", "--format", "gcp"}, opts...)...)
	t.Logf("kitrun run -d:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run -d --backend gcp: %v", err)
	}
	out, err = kitrun("ps", "--state-dir", state)
	t.Logf("kitrun ps:\n%s", out)
	if err != nil || !strings.Contains(out, "gcpweb") {
		t.Errorf("kitrun ps: %v", err)
	}
	out, err = kitrun("stop", "--state-dir", state, "gcpweb")
	t.Logf("kitrun stop:\n%s", out)
	if err != nil {
		t.Errorf("kitrun stop: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); len(f.Transient()) != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a minute after kitrun stop, left: %v", f.Transient())
		}
	}

	// kill -9 mid-run: the instance outlives kitrun; the next kitrun
	// start deletes it from the runtime directory's record.
	before := f.Instances()
	env := killedAtReady(t, bin, append([]string{"run", minimal, "--backend", "gcp"}, opts...)...)
	killed := ""
	for name, st := range f.Instances() {
		if _, old := before[name]; !old {
			killed = name
			if st != "RUNNING" {
				t.Fatalf("after kill -9 of kitrun its instance is %s, want it still running", st)
			}
		}
	}
	if killed == "" {
		t.Fatal("the killed run's instance is gone already")
	}
	nextStart(t, bin, env)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, ok := f.Instances()[killed]; !ok {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("30s after the next kitrun start, the killed run's instance %s is still there", killed)
		}
	}

	out, err = kitrun(append([]string{"cloud", "sweep", "--backend", "gcp", "--dry-run", "--older-than", "1ns"}, opts...)...)
	if err != nil || !strings.Contains(out, "would delete image") {
		t.Errorf("sweep --dry-run: %v\n%s", err, out)
	}
	out, err = kitrun(append([]string{"cloud", "sweep", "--backend", "gcp", "--older-than", "1ns"}, opts...)...)
	t.Logf("kitrun cloud sweep:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun cloud sweep: %v", err)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left after the sweep: %v", r)
	}
}
