package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/azure/azurefake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestAzureBackendCommands runs `kitrun run`, `bench` and `test` with
// --backend azure against the fakes (a page-blob store and an ARM that
// boots the VM's disk with QEMU, in this test process), then `kitrun cloud
// sweep` removes the image disks they shared. Three boots under TCG.
func TestAzureBackendCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("boots four VMs")
	}
	qemutest.Require(t, "x86_64")
	f := azurefake.Start(t, azurefake.Options{Boot: true})
	f.Env(t)
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
	out, err := kitrun(append([]string{"run", minimal, "--backend", "azure", "--format", "vhd", "--until-ready"}, opts...)...)
	t.Logf("kitrun run:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run --backend azure: %v", err)
	}
	for _, want := range []string{"api-accepted", "running", "all-ready", "powered off cleanly"} {
		if !strings.Contains(out, want) {
			t.Errorf("kitrun run's output lacks %q", want)
		}
	}

	dir := t.TempDir()
	res := filepath.Join(dir, "bench.txt")
	out, err = kitrun(append([]string{"bench", minimal, "--backend", "azure", "--image-format", "vhd", "--runs", "1", "--warmup", "0",
		"--settle", "0s", "--format", "benchfmt", "-o", res, "--results-dir", filepath.Join(dir, "results")}, opts...)...)
	t.Logf("kitrun bench:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun bench --backend azure: %v", err)
	}
	b, _ := os.ReadFile(res)
	t.Logf("benchfmt:\n%s", b)
	for _, want := range []string{"boot.api_accepted", "boot.first_output", "boot.all_ready"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bench results lack %s", want)
		}
	}

	out, err = kitrun(append([]string{"test", filepath.Join(root, "testcases", "cases", "010_readiness", "010_tcp"),
		"--backend", "azure", "--format", "vhd", "--results", filepath.Join(dir, "test-results")}, opts...)...)
	t.Logf("kitrun test:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend azure: %v", err)
	}
	if blobs, _ := f.Uploads(); blobs != 2 {
		// minimal.yml's vhd once for run and bench; the test case's once.
		t.Errorf("%d uploads, want 2 (one per disk digest)", blobs)
	}

	// A case whose boot needs per-boot files (SSH keys): the seed reaches
	// the guest through the platform's instance metadata, and the
	// harness's SSH client pins the host key it delivered.
	out, err = kitrun(append([]string{"test", filepath.Join(root, "testcases", "cases", "040_ssh", "010_exec"),
		"--backend", "azure", "--format", "vhd", "--results", filepath.Join(dir, "ssh-results")}, opts...)...)
	t.Logf("kitrun test (ssh):\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend azure of an SSH case: %v", err)
	}

	// Detached: the supervisor reopens the backend with the recorded
	// options; ps and stop reach the VM through it.
	state := t.TempDir()
	out, err = kitrun(append([]string{"run", "--state-dir", state, "-d", "--name", "azweb", minimal, "--backend", "azure", "--format", "vhd"}, opts...)...)
	t.Logf("kitrun run -d:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run -d --backend azure: %v", err)
	}
	out, err = kitrun("ps", "--state-dir", state)
	t.Logf("kitrun ps:\n%s", out)
	if err != nil || !strings.Contains(out, "azweb") {
		t.Errorf("kitrun ps: %v", err)
	}
	out, err = kitrun("stop", "--state-dir", state, "azweb")
	t.Logf("kitrun stop:\n%s", out)
	if err != nil {
		t.Errorf("kitrun stop: %v", err)
	}

	out, err = kitrun(append([]string{"cloud", "sweep", "--backend", "azure", "--dry-run", "--older-than", "1ns"}, opts...)...)
	if err != nil || !strings.Contains(out, "would delete image-disk") {
		t.Errorf("sweep --dry-run: %v\n%s", err, out)
	}
	out, err = kitrun(append([]string{"cloud", "sweep", "--backend", "azure", "--older-than", "1ns"}, opts...)...)
	t.Logf("kitrun cloud sweep:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun cloud sweep: %v", err)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left after the sweep: %v", r)
	}
}
