package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kbench "github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/hypervisor/hyperv/hypervfake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestMain lets this test binary act as the fake Hyper-V host's PowerShell
// (hypervfake): kitrun's hyperv backend runs it as pwsh.
func TestMain(m *testing.M) {
	hypervfake.MaybeRunPwsh()
	os.Exit(m.Run())
}

// TestHyperVBackend runs `kitrun run`, `bench` and `test` with --backend
// hyperv against the fake Windows host: the real binary, the hyperv
// backend's PowerShell scripts run by the fake's PowerShell, VMs booted by
// QEMU from the vhdx (TCG), console and event channel through the COM
// port relays.
func TestHyperVBackend(t *testing.T) {
	qemutest.Require(t, "x86_64")
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.fd"); err != nil {
		t.Skip("OVMF missing (run `make deps`)")
	}
	h := hypervfake.Start(t)
	bin := buildKitrun(t)
	root := qemutest.RepoRoot(t)
	minimal := filepath.Join(root, "examples", "minimal.yml")
	kitrun := func(args ...string) (string, error) {
		args = append(args, "--backend", "hyperv")
		args = append(args, h.BackendOpts()...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}

	t.Run("run", func(t *testing.T) {
		// No --format: the backend's own, vhdx.
		out, err := kitrun("run", minimal, "--until-ready")
		if err != nil {
			t.Fatalf("kitrun run: %v\n%s", err, out)
		}
		for _, want := range []string{"on hyperv x86_64/gen2-qemu (machine kitrun-minimal-", "all-ready", "service-ready hello", "powered off cleanly"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if out, err := kitrun("run", minimal, "--format", "kernel+initrd", "--until-ready"); err == nil || !strings.Contains(out, "--format vhdx") {
			t.Errorf("a direct kernel boot must be refused with a hint: %v\n%s", err, out)
		}
	})

	t.Run("bench", func(t *testing.T) {
		res := filepath.Join(t.TempDir(), "bench.json")
		out, err := kitrun("bench", minimal, "--image-format", "vhdx", "--runs", "2", "--warmup", "0", "--cooldown", "0",
			"--settle", "100ms", "--format", "json", "-o", res, "--results-dir", t.TempDir())
		if err != nil {
			t.Fatalf("kitrun bench: %v\n%s", err, out)
		}
		b, err := os.ReadFile(res)
		if err != nil {
			t.Fatal(err)
		}
		var r kbench.Results
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Configs) != 1 || r.Configs[0].Failed != 0 {
			t.Fatalf("configs %+v\n%s", r.Configs, out)
		}
		st := r.Configs[0].Stats
		for _, m := range []string{"boot.vmm_ready", "boot.init_start", "boot.all_ready", "guest.all_ready", "mem.guest_total", "shutdown"} {
			if st[m].N != 2 {
				t.Errorf("metric %s: %+v", m, st[m])
			}
		}
		t.Logf("hyperv (fake host, TCG) minimal all-ready: median %.3fs (init-start %.3fs, VM running %.3fs), shutdown %.3fs",
			st["boot.all_ready"].Median, st["boot.init_start"].Median, st["boot.vmm_ready"].Median, st["shutdown"].Median)
	})

	t.Run("test", func(t *testing.T) {
		out, err := kitrun("test", filepath.Join(root, "testcases"), "--run", "readiness/tcp", "--results", t.TempDir())
		if err != nil {
			t.Fatalf("kitrun test: %v\n%s", err, out)
		}
		if !strings.Contains(out, "1 passed, 0 failed, 0 skipped") {
			t.Errorf("output:\n%s", out)
		}
	})

	// An SSH case: its keys reach the guest on the seed disk.
	t.Run("test ssh", func(t *testing.T) {
		out, err := kitrun("test", filepath.Join(root, "testcases"), "--run", "ssh/exec", "--results", t.TempDir())
		if err != nil {
			t.Fatalf("kitrun test: %v\n%s", err, out)
		}
		if !strings.Contains(out, "1 passed, 0 failed, 0 skipped") {
			t.Errorf("output:\n%s", out)
		}
	})

	t.Run("detached", func(t *testing.T) {
		state := t.TempDir()
		out, err := kitrun("run", "-d", "--name", "hv", "--state-dir", state, minimal)
		if err != nil {
			t.Fatalf("kitrun run -d: %v\n%s", err, out)
		}
		if running := h.Running(); len(running) != 1 {
			t.Errorf("running on the fake host: %v", running)
		}
		ps, err := exec.Command(bin, "ps", "--state-dir", state).CombinedOutput()
		if err != nil || !strings.Contains(string(ps), "hv") {
			t.Errorf("kitrun ps: %v\n%s", err, ps)
		}
		t.Logf("kitrun ps:\n%s", ps)
		stop, err := exec.Command(bin, "stop", "hv", "--state-dir", state).CombinedOutput()
		if err != nil {
			t.Errorf("kitrun stop: %v\n%s", err, stop)
		}
		exec.Command(bin, "rm", "hv", "--state-dir", state).Run()
	})

	// A Hyper-V VM does not die with kitrun as a local QEMU does: kitrun
	// records it in its runtime directory, and after a kill -9 the next
	// kitrun start destroys it through the backend.
	t.Run("kill -9", func(t *testing.T) {
		env := killedAtReady(t, bin, append([]string{"run", minimal, "--backend", "hyperv"}, h.BackendOpts()...)...)
		if running := h.Running(); len(running) != 1 {
			t.Fatalf("after kill -9 of kitrun the fake host runs %v, want its VM still running", running)
		}
		nextStart(t, bin, env)
		if vms := h.VMs(); len(vms) != 0 {
			t.Errorf("after the next kitrun start the fake host still has %v", vms)
		}
	})

	if vms := h.VMs(); len(vms) != 0 {
		t.Errorf("VMs left on the fake host: %v", vms)
	}
}
