package qemu

import (
	"errors"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/hypervisor"
)

func TestParseRelease(t *testing.T) {
	for in, want := range map[string]qemuRelease{
		"7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)": {7, 2},
		"10.2.0":               {10, 2},
		"8.0.0 (v8.0.0-dirty)": {8, 0},
	} {
		got, err := parseRelease(in)
		if err != nil || got != want {
			t.Errorf("parseRelease(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseRelease("QEMU emulator"); err == nil {
		t.Error("parseRelease of no version: no error")
	}
}

// TestSnapshotRelease: riscv64 and ppc64le machines get snapshots only
// from the first QEMU that saves their timers; other arches from any
// release.
func TestSnapshotRelease(t *testing.T) {
	for _, c := range []struct {
		arch, version string
		unsupported   bool
	}{
		{"riscv64", "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", true},
		{"riscv64", "10.1.3", true},
		{"riscv64", "10.2.0", false},
		{"riscv64", "11.0.0", false},
		{"ppc64le", "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", true},
		{"ppc64le", "8.2.0", false},
		{"s390x", "7.2.22", true},
		{"s390x", "7.1.0", true},
		{"s390x", "8.0.0", false},
		{"x86_64", "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", false},
		{"aarch64", "7.2.22", false},
	} {
		a, err := arch.Lookup(c.arch)
		if err != nil {
			t.Fatal(err)
		}
		name, mt, err := lookupMachine(a, "")
		if err != nil {
			t.Fatal(err)
		}
		err = snapshotReleaseUnsupported(&mt, a, name, c.version)
		var ue *hypervisor.UnsupportedError
		if got := errors.As(err, &ue); got != c.unsupported {
			t.Errorf("%s with QEMU %s: unsupported %v (%v), want %v", c.arch, c.version, got, err, c.unsupported)
		}
		if c.unsupported && !strings.Contains(err.Error(), c.arch+" "+name+" machine with QEMU") {
			t.Errorf("%s with QEMU %s: error does not name the machine: %v", c.arch, c.version, err)
		}
	}
}
