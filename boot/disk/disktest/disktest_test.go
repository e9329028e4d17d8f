package disktest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"

	"github.com/kitrun/kitrun/boot/disk/disktest"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestHarnessBootsAHostToolISO checks the harness itself against an ISO
// made by host tools (xorriso and isolinux): if this fails, the harness is
// wrong, not kitrun's formats.
func TestHarnessBootsAHostToolISO(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	a := qemutest.Require(t, "x86_64")
	for _, tool := range []string{"xorriso"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	cache := assemble.DefaultCacheDir()
	l := &disk.Loaders{PackageDir: filepath.Join(cache, "packages"), CacheDir: filepath.Join(t.TempDir(), "loaders")}
	isolinux, err := l.File(context.Background(), "isolinux", "all", "usr/lib/ISOLINUX/isolinux.bin")
	if err != nil {
		t.Fatal(err)
	}
	ldlinux, err := l.File(context.Background(), "syslinux-common", "all", "usr/lib/syslinux/modules/bios/ldlinux.c32")
	if err != nil {
		t.Fatal(err)
	}
	img := qemutest.BuildSpec(t, a, filepath.Join(qemutest.RepoRoot(t), "examples/minimal.yml"))
	root := t.TempDir()
	cp := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, dst), b, 0o644)
	}
	cp(isolinux, "isolinux.bin")
	cp(ldlinux, "ldlinux.c32")
	cp(img.Kernel, "kernel")
	cp(img.Initrd, "initrd.img")
	cfg := "default k\nlabel k\n  kernel /kernel\n  append initrd=/initrd.img " + disktest.Cmdline(a, img.Cmdline) + "\n"
	os.WriteFile(filepath.Join(root, "isolinux.cfg"), []byte(cfg), 0o644)
	out := filepath.Join(t.TempDir(), "test.iso")
	if b, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", out, "-b", "isolinux.bin", "-c", "boot.cat",
		"-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", root).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	r := disktest.Run(t, disktest.Boot{Arch: a, Firmware: "bios", Path: out, Media: disktest.CDROM})
	t.Logf("all-ready after %s, %d events", r.Took, len(r.Events))
}
