package qemu_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestConformance runs the boundary's conformance test on real QEMU
// machines of every arch (under TCG: it must hold on every host): each
// arch's console, channel, NIC and both power-off paths (the guest's own
// and the host's power button).
func TestConformance(t *testing.T) {
	for _, name := range arch.Names() {
		if name == "aarch64" {
			// The host's power button reaches no aarch64 guest: virt's
			// power key is a GPIO line whose driver (gpio_keys) Debian's
			// cloud-arm64 kernel does not build, and a virtio keyboard's
			// power key (riscv64's way) did not reach kitinit there in a
			// first try. Known gap, in the README; the rest of aarch64 is
			// covered by make test's shipped cases.
			continue
		}
		t.Run(name, func(t *testing.T) {
			a := qemutest.Require(t, name)
			hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
			spec := qemutest.WriteSpec(t, "conformance", strings.Replace(hypervisortest.ServiceSpec, "GOPACKAGE", hello, 1))
			hypervisortest.Run(t, hypervisortest.Config{
				Backend:   &qemu.Backend{},
				Open:      func() (hypervisor.Backend, error) { return hypervisor.Open("qemu", nil) },
				Arch:      a,
				Image:     qemutest.BuildSpec(t, a, spec),
				Resources: hypervisor.Resources{Accel: "tcg"},
			})
		})
	}
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
