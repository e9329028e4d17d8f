package qemu_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestConformance runs the boundary's conformance test on real QEMU
// machines (under TCG: it must hold on every host).
func TestConformance(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	spec := qemutest.WriteSpec(t, "conformance", strings.Replace(hypervisortest.ServiceSpec, "GOPACKAGE", hello, 1))
	hypervisortest.Run(t, hypervisortest.Config{
		Backend:   &qemu.Backend{},
		Open:      func() (hypervisor.Backend, error) { return hypervisor.Open("qemu", nil) },
		Arch:      a,
		Image:     qemutest.BuildSpec(t, a, spec),
		Resources: hypervisor.Resources{Accel: "tcg"},
	})
}

// TestConformanceWindowsWiring runs the conformance test with QEMU wired
// as on Windows (console, channel and QMP over TCP on 127.0.0.1) and kept
// from outliving kitrun by the portable watchdog: what a Windows or macOS
// host runs, short of the OS itself.
func TestConformanceWindowsWiring(t *testing.T) {
	t.Setenv(qemu.TeardownEnv, qemu.TeardownWatchdog)
	old := qemu.SetTCPStreams(true)
	t.Cleanup(func() { qemu.SetTCPStreams(old) })
	TestConformance(t)
}
