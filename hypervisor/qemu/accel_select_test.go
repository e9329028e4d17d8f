package qemu_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/hypervisor/qemu"
)

// TestHardwareAccelSelection: what auto tries per host OS and arch, before
// any probe. Each OS's own accelerator, for guests of the host's arch only;
// WHPX for x86_64 only; TCG (no hardware accelerator) otherwise.
func TestHardwareAccelSelection(t *testing.T) {
	x86, _ := arch.Lookup("x86_64")
	arm, _ := arch.Lookup("aarch64")
	for _, c := range []struct {
		goos        string
		host, guest arch.Arch
		want, why   string
	}{
		{"linux", x86, x86, "kvm", ""},
		{"linux", arm, arm, "kvm", ""},
		{"linux", x86, arm, "", "cannot run aarch64 guests on a x86_64 host"},
		{"darwin", arm, arm, "hvf", ""}, // Apple Silicon
		{"darwin", x86, x86, "hvf", ""}, // Intel Mac
		{"darwin", arm, x86, "", "HVF cannot run x86_64 guests"},
		{"windows", x86, x86, "whpx", ""},
		{"windows", x86, arm, "", "WHPX cannot run aarch64 guests"},
		{"windows", arm, arm, "", "WHPX runs x86_64 guests only"},
		{"freebsd", x86, x86, "", "no hardware accelerator"},
	} {
		got, why := qemu.HardwareAccel(c.goos, c.host, c.guest)
		if got != c.want || (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
			t.Errorf("%s, %s host, %s guest: got %q (%s), want %q (%s)", c.goos, c.host.Name, c.guest.Name, got, why, c.want, c.why)
		}
	}
	// hvf and whpx get the accelerator's "max" CPU; KVM and TCG keep the
	// machine table's.
	for accel, want := range map[string]string{"kvm": "host", "tcg": "qemu64", "hvf": "max", "whpx": "max"} {
		if got := qemu.CPUFor(x86, "q35", accel); got != want {
			t.Errorf("q35 under %s: -cpu %s, want %s", accel, got, want)
		}
	}
}

// TestAccelRequestedElsewhere: asking for another OS's accelerator is an
// error that says what is valid here.
func TestAccelRequestedElsewhere(t *testing.T) {
	a := arch.Host()
	b := &qemu.Backend{ProbeCache: t.TempDir() + "/probe.json"}
	for _, want := range []string{"hvf", "whpx", "kvm"} {
		_, _, err := qemu.ResolveAccelWithBinary(b, a, want, "/bin/true")
		if want == map[string]string{"linux": "kvm", "darwin": "hvf", "windows": "whpx"}[hostOS()] {
			continue // this OS's own: usable or not, that is the host's
		}
		if err == nil || !strings.Contains(err.Error(), "valid here") {
			t.Errorf("--accel %s on %s: %v", want, hostOS(), err)
		}
	}
	if _, _, err := qemu.ResolveAccelWithBinary(b, a, "xen", "/bin/true"); err == nil || !strings.Contains(err.Error(), "auto, kvm, hvf, whpx, tcg") {
		t.Errorf("unknown accelerator: %v", err)
	}
}

func hostOS() string { return runtime.GOOS }
