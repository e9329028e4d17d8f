package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// cloudCLI is a cloud backend's fake as kitrun's commands see it, for
// testCloudCommands: what the backends' CLI tests do alike comes from
// there, what differs from here.
type cloudCLI struct {
	// backend is --backend; format the disk format it boots.
	backend, format string
	// fakeOptions are the fake's BackendOptions: every command that
	// reaches the cloud gets them as --backend-opt k=v.
	fakeOptions map[string]string
	// benchMetrics are what `kitrun bench`'s benchfmt results must hold.
	benchMetrics []string
	// imagesMade fails t unless run, bench and the test case made two
	// images: one per disk digest (minimal.yml's, the test case's).
	imagesMade func(t *testing.T)
	// afterTests and afterStop, if set, check the fake after the test
	// cases and after `kitrun stop` of the detached run.
	afterTests, afterStop func(t *testing.T)
	// killedRun, if set, checks a run killed with SIGKILL at all-ready:
	// killAtReady starts it and kills it, nextStart is the next kitrun
	// start, which ends the machine that outlived kitrun from the
	// runtime directory's record.
	killedRun func(t *testing.T, killAtReady, nextStart func())
	// wouldDelete is what `kitrun cloud sweep --dry-run` names ("image").
	wouldDelete string
	// resources lists all the fake holds: nothing after the sweep.
	resources func() []string
}

// testCloudCommands runs `kitrun run`, `bench` and `test` (a readiness
// case and an SSH case) with the backend against its fake, a detached run
// that `kitrun ps` lists and `kitrun stop` stops, c.killedRun, then
// `kitrun cloud sweep` (dry run first) removes the images they left. It
// returns the kitrun runner, for what a test checks beyond.
func testCloudCommands(t *testing.T, c cloudCLI) func(args ...string) (string, error) {
	t.Helper()
	bin := buildKitrun(t)
	root := qemutest.RepoRoot(t)
	var opts []string
	for k, v := range c.fakeOptions {
		opts = append(opts, "--backend-opt", k+"="+v)
	}
	kitrun := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	// withOpts is kitrun with the fake's options after args.
	withOpts := func(args ...string) (string, error) {
		t.Helper()
		return kitrun(append(args, opts...)...)
	}

	minimal := filepath.Join(root, "examples", "minimal.yml")
	out, err := withOpts("run", minimal, "--backend", c.backend, "--format", c.format, "--until-ready")
	t.Logf("kitrun run:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run --backend %s: %v", c.backend, err)
	}
	for _, want := range []string{"api-accepted", "running", "all-ready", "powered off cleanly"} {
		if !strings.Contains(out, want) {
			t.Errorf("kitrun run's output lacks %q", want)
		}
	}

	dir := t.TempDir()
	res := filepath.Join(dir, "bench.txt")
	out, err = withOpts("bench", minimal, "--backend", c.backend, "--image-format", c.format, "--runs", "1", "--warmup", "0",
		"--settle", "0s", "--format", "benchfmt", "-o", res, "--results-dir", filepath.Join(dir, "results"))
	t.Logf("kitrun bench:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun bench --backend %s: %v", c.backend, err)
	}
	b, _ := os.ReadFile(res)
	t.Logf("benchfmt:\n%s", b)
	for _, want := range c.benchMetrics {
		if !strings.Contains(string(b), want) {
			t.Errorf("bench results lack %s", want)
		}
	}

	out, err = withOpts("test", filepath.Join(root, "testcases", "cases", "010_readiness", "010_tcp"),
		"--backend", c.backend, "--format", c.format, "--results", filepath.Join(dir, "test-results"))
	t.Logf("kitrun test:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend %s: %v", c.backend, err)
	}
	c.imagesMade(t)

	// A case whose boot needs per-boot files (SSH keys): the seed reaches
	// the guest through the platform's instance metadata, and the
	// harness's SSH client pins the host key it delivered.
	out, err = withOpts("test", filepath.Join(root, "testcases", "cases", "040_ssh", "010_exec"),
		"--backend", c.backend, "--format", c.format, "--results", filepath.Join(dir, "ssh-results"))
	t.Logf("kitrun test (ssh):\n%s", out)
	if err != nil {
		t.Fatalf("kitrun test --backend %s of an SSH case: %v", c.backend, err)
	}
	if c.afterTests != nil {
		c.afterTests(t)
	}

	// Detached: the supervisor reopens the backend with the recorded
	// options; ps and stop reach the machine through it.
	state := t.TempDir()
	name := c.backend + "web"
	out, err = withOpts("run", "--state-dir", state, "-d", "--name", name, minimal, "--backend", c.backend, "--format", c.format)
	t.Logf("kitrun run -d:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun run -d --backend %s: %v", c.backend, err)
	}
	out, err = kitrun("ps", "--state-dir", state)
	t.Logf("kitrun ps:\n%s", out)
	if err != nil || !strings.Contains(out, name) {
		t.Errorf("kitrun ps: %v", err)
	}
	out, err = kitrun("stop", "--state-dir", state, name)
	t.Logf("kitrun stop:\n%s", out)
	if err != nil {
		t.Errorf("kitrun stop: %v", err)
	}
	if c.afterStop != nil {
		c.afterStop(t)
	}

	if c.killedRun != nil {
		var env []string
		c.killedRun(t,
			func() {
				env = killedAtReady(t, bin, append([]string{"run", minimal, "--backend", c.backend}, opts...)...)
			},
			func() { nextStart(t, bin, env) })
	}

	out, err = withOpts("cloud", "sweep", "--backend", c.backend, "--dry-run", "--older-than", "1ns")
	if err != nil || !strings.Contains(out, "would delete "+c.wouldDelete) {
		t.Errorf("sweep --dry-run: %v\n%s", err, out)
	}
	out, err = withOpts("cloud", "sweep", "--backend", c.backend, "--older-than", "1ns")
	t.Logf("kitrun cloud sweep:\n%s", out)
	if err != nil {
		t.Fatalf("kitrun cloud sweep: %v", err)
	}
	if r := c.resources(); len(r) != 0 {
		t.Errorf("left after the sweep: %v", r)
	}
	return kitrun
}
