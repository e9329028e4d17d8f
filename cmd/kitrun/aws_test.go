package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/aws/awsfake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestAWSBackendCommands runs `kitrun run`, `bench` and `test` with
// --backend aws against the fakes (S3 and an EC2 that boots the imported
// disk with QEMU, in this test process), then `kitrun cloud sweep`
// removes the image they shared. Three boots under TCG.
func TestAWSBackendCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three VMs")
	}
	qemutest.Require(t, "x86_64")
	f := awsfake.Start(t, awsfake.Options{Boot: true})
	f.Env(t) // the kitrun processes inherit the fake credentials
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
	out, err := kitrun(append([]string{"run", minimal, "--backend", "aws", "--format", "aws", "--until-ready"}, opts...)...)
	t.Logf("kitrun run:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run --backend aws: %v", err)
	}
	for _, want := range []string{"api-accepted", "running", "all-ready", "powered off cleanly"} {
		if !strings.Contains(out, want) {
			t.Errorf("kitrun run's output lacks %q", want)
		}
	}

	dir := t.TempDir()
	res := filepath.Join(dir, "bench.txt")
	out, err = kitrun(append([]string{"bench", minimal, "--backend", "aws", "--image-format", "aws", "--runs", "1", "--warmup", "0",
		"--settle", "0s", "--format", "benchfmt", "-o", res, "--results-dir", filepath.Join(dir, "results")}, opts...)...)
	t.Logf("kitrun bench:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun bench --backend aws: %v", err)
	}
	b, _ := os.ReadFile(res)
	t.Logf("benchfmt:\n%s", b)
	for _, want := range []string{"boot.api_accepted", "boot.instance_running", "boot.first_output", "boot.all_ready"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bench results lack %s", want)
		}
	}

	out, err = kitrun(append([]string{"test", filepath.Join(root, "testcases", "cases", "010_readiness", "010_tcp"),
		"--backend", "aws", "--format", "aws", "--results", filepath.Join(dir, "test-results")}, opts...)...)
	t.Logf("kitrun test:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend aws: %v", err)
	}
	if n := f.Calls("ImportSnapshot"); n != 2 {
		// minimal.yml's aws disk once for run and bench; the test case's once.
		t.Errorf("%d imports, want 2 (one per disk digest)", n)
	}

	// A case whose boot needs per-boot files (SSH keys): the seed reaches
	// the guest through the platform's instance metadata, and the
	// harness's SSH client pins the host key it delivered.
	out, err = kitrun(append([]string{"test", filepath.Join(root, "testcases", "cases", "040_ssh", "010_exec"),
		"--backend", "aws", "--format", "aws", "--results", filepath.Join(dir, "ssh-results")}, opts...)...)
	t.Logf("kitrun test (ssh):\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend aws of an SSH case: %v", err)
	}

	// Detached: the supervisor reopens the backend with the recorded
	// options; ps and stop reach the instance through it.
	state := t.TempDir()
	out, err = kitrun(append([]string{"run", "--state-dir", state, "-d", "--name", "awsweb", minimal, "--backend", "aws", "--format", "aws"}, opts...)...)
	t.Logf("kitrun run -d:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run -d --backend aws: %v", err)
	}
	out, err = kitrun("ps", "--state-dir", state)
	t.Logf("kitrun ps:\n%s", out)
	if err != nil || !strings.Contains(out, "awsweb") {
		t.Errorf("kitrun ps: %v", err)
	}
	out, err = kitrun("stop", "--state-dir", state, "awsweb")
	t.Logf("kitrun stop:\n%s", out)
	if err != nil {
		t.Errorf("kitrun stop: %v", err)
	}

	// kill -9 mid-run: the instance outlives kitrun; the next kitrun
	// start destroys it from the runtime directory's record, and the
	// image is left for the sweep below.
	env := killedAtReady(t, bin, append([]string{"run", minimal, "--backend", "aws"}, opts...)...)
	insts := f.Instances()
	last := insts[len(insts)-1]
	if last[1] != "running" {
		t.Fatalf("after kill -9 of kitrun its instance is %v, want it still running", last)
	}
	nextStart(t, bin, env)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		insts = f.Instances()
		if st := insts[len(insts)-1][1]; st == "terminated" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("30s after the next kitrun start, the killed run's instance is %s", st)
		}
	}

	out, err = kitrun(append([]string{"cloud", "sweep", "--backend", "aws", "--dry-run", "--older-than", "1ns"}, opts...)...)
	if err != nil || !strings.Contains(out, "would delete image") {
		t.Errorf("sweep --dry-run: %v\n%s", err, out)
	}
	out, err = kitrun(append([]string{"cloud", "sweep", "--backend", "aws", "--older-than", "1ns"}, opts...)...)
	t.Logf("kitrun cloud sweep:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun cloud sweep: %v", err)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left after the sweep: %v", r)
	}
	out, err = kitrun("cloud", "sweep", "--backend", "qemu")
	if err == nil || !strings.Contains(out, "aws") {
		t.Errorf("sweep of a backend without a cloud must fail naming the cloud backends: %v\n%s", err, out)
	}
}
