package arch

import (
	"os"
	"sort"
	"strings"
	"testing"
)

// TestMakeKernelsFetchesEveryArch keeps the Makefile's KERNEL_ARCHES (what
// `make kernels` downloads) equal to the table: an arch added here without
// its kernel there would boot nowhere on a fresh machine.
func TestMakeKernelsFetchesEveryArch(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "KERNEL_ARCHES :="); ok {
			got = strings.Fields(v)
		}
	}
	var want []string
	for _, a := range All() {
		s := a.Debian + ":" + a.KernelFlavour
		if a.DebianRelease != "" {
			s += "@" + a.DebianRelease
		}
		want = append(want, s)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Makefile KERNEL_ARCHES = %v; the arch table wants %v", got, want)
	}
}

func TestKernelPackage(t *testing.T) {
	for name, want := range map[string]string{
		"x86_64": "linux-image-cloud", "aarch64": "linux-image-cloud",
		"s390x": "linux-image", "ppc64le": "linux-image", "riscv64": "linux-image",
	} {
		a, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.KernelPackage("linux-image-cloud"); got != want {
			t.Errorf("%s: KernelPackage(linux-image-cloud) = %q, want %q", name, got, want)
		}
		if got := a.KernelPackage("linux-image-rt"); got != "linux-image-rt" {
			t.Errorf("%s: KernelPackage(linux-image-rt) = %q: only linux-image-cloud is mapped", name, got)
		}
	}
}
