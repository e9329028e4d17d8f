package bench

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// The reference specs that README § The floor benches beside the floor and
// examples/minimal.yml build, and differ from the example only as they say:
// kitinit-only has no service; listener's is a Go program a fraction of the
// size of the example's, behind the same TCP probe.
func TestReferenceSpecs(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	root := qemutest.RepoRoot(t)
	build := func(rel string) *image.Image {
		return qemutest.BuildSpec(t, a, filepath.Join(root, filepath.FromSlash(rel)))
	}
	minimal := build("examples/minimal.yml")
	only := build("bench/reference/kitinit-only.yml")
	listener := build("bench/reference/listener.yml")

	if len(only.Manifest.Services) != 0 {
		t.Errorf("kitinit-only has services %v", only.Manifest.Services)
	}
	if !slices.Equal(listener.Manifest.Services, []string{"listener"}) {
		t.Errorf("listener's services: %v", listener.Manifest.Services)
	}
	for _, img := range []*image.Image{only, listener} {
		if img.Manifest.KernelVersion != minimal.Manifest.KernelVersion || img.Cmdline != minimal.Cmdline {
			t.Errorf("%s: kernel %s, command line %q; the example has %s, %q",
				img.Manifest.Name, img.Manifest.KernelVersion, img.Cmdline, minimal.Manifest.KernelVersion, minimal.Cmdline)
		}
	}
	// The service's bytes in the initramfs, as the bench reports them.
	hello := DiskMetrics(minimal)["disk.component.service.hello"]
	small := DiskMetrics(listener)["disk.component.service.listener"]
	if small == 0 || small*3 > hello*2 {
		t.Errorf("listener is %.0f bytes, hello %.0f: not the small service it stands for", small, hello)
	}
	t.Logf("service binaries: hello %.0f bytes, listener %.0f", hello, small)
}
