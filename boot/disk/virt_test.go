package disk_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/boot/disk/disktest"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// containers are the formats that wrap raw-efi, with qemu-img's name for
// those QEMU reads.
var containers = []struct{ name, qemu string }{
	{"qcow2", "qcow2"}, {"vhd", "vpc"}, {"vhdx", "vhdx"}, {"vmdk", "vmdk"}, {"gcp", ""}, {"aws", ""},
}

func build(t *testing.T, format string, in *disk.Input, base, dir string) string {
	t.Helper()
	f, err := disk.Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, f.File)
	if err := f.Build(context.Background(), in, base, out); err != nil {
		t.Fatalf("building %s: %v", format, err)
	}
	return out
}

func TestContainersAreRegistered(t *testing.T) {
	for _, c := range containers {
		f, err := disk.Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Base != "raw-efi" || f.Firmware != disk.EFI || f.Build == nil {
			t.Errorf("%s: base %q, firmware %q", c.name, f.Base, f.Firmware)
		}
		// A container boots where its base does.
		base, err := disk.Lookup("raw-efi")
		if err != nil {
			continue // raw-efi is not registered yet in this tree
		}
		for _, a := range arch.All() {
			if (f.For(a) == nil) != (base.For(a) == nil) {
				t.Errorf("%s on %s: %v; raw-efi: %v", c.name, a.Name, f.For(a), base.For(a))
			}
		}
	}
}

// hybridISO makes a bootable disk image without kitrun's own raw formats:
// an ISO made hybrid by xorriso with isolinux's MBR, which SeaBIOS boots
// as a hard disk, holding the minimal example's kernel and initramfs.
func hybridISO(t *testing.T, a arch.Arch) string {
	t.Helper()
	rawtest.RequireTool(t, "xorriso")
	cache := assemble.DefaultCacheDir()
	l := &disk.Loaders{PackageDir: filepath.Join(cache, "packages"), CacheDir: filepath.Join(t.TempDir(), "loaders")}
	file := func(pkg, member string) string {
		p, err := l.File(context.Background(), pkg, "all", member)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	img := qemutest.BuildSpec(t, a, filepath.Join(qemutest.RepoRoot(t), "examples/minimal.yml"))
	root := t.TempDir()
	for src, dst := range map[string]string{
		file("isolinux", "usr/lib/ISOLINUX/isolinux.bin"):                    "isolinux.bin",
		file("syslinux-common", "usr/lib/syslinux/modules/bios/ldlinux.c32"): "ldlinux.c32",
		img.Kernel: "kernel",
		img.Initrd: "initrd.img",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := "default k\nlabel k\n  kernel /kernel\n  append initrd=/initrd.img " + disktest.Cmdline(a, img.Cmdline) + "\n"
	if err := os.WriteFile(filepath.Join(root, "isolinux.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "hybrid.iso")
	if b, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", out,
		"-isohybrid-mbr", file("isolinux", "usr/lib/ISOLINUX/isohdpfx.bin"),
		"-b", "isolinux.bin", "-c", "boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", root).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}

// TestContainersBoot wraps a bootable disk in each container QEMU reads
// and boots it from a virtio disk under SeaBIOS to kitinit's all-ready.
func TestContainersBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	a := qemutest.Require(t, "x86_64")
	iso := hybridISO(t, a)
	in := &disk.Input{Payload: disk.Payload{Name: "minimal", Arch: a}}
	for _, c := range containers {
		if c.qemu == "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			out := build(t, c.name, in, iso, t.TempDir())
			r := disktest.Run(t, disktest.Boot{Arch: a, Firmware: "bios", Path: out, Format: c.qemu, Media: disktest.Disk})
			t.Logf("%s: all-ready after %s, %d events", c.name, r.Took, len(r.Events))
		})
	}
}

// TestGrownGPTStaysValid builds the formats that grow the disk (vhd to
// whole MiB, gcp to whole GiB) from a GPT disk of an awkward size: the disk
// they hold passes `sgdisk -v`, and holds the original's bytes.
func TestGrownGPTStaysValid(t *testing.T) {
	rawtest.RequireTool(t, "sgdisk")
	rawtest.RequireTool(t, "tar")
	dir := t.TempDir()
	raw := filepath.Join(dir, "gpt.raw")
	const size = 20*rawtest.MiB + 17*512
	if err := os.WriteFile(raw, rawtest.Pattern(7, size, true), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("sgdisk", "-Z", "-o", "-n", "1:2048:+4M", "-t", "1:ef00", raw).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, b)
	}
	in := &disk.Input{Payload: disk.Payload{Name: "gpt", Arch: arch.Host()}}

	vhdRaw := filepath.Join(dir, "from-vhd.raw")
	rawtest.QemuImg(t, "convert", "-f", "vpc", "-O", "raw", build(t, "vhd", in, raw, dir), vhdRaw)
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	if b, err := exec.Command("tar", "-xzf", build(t, "gcp", in, raw, dir), "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	orig, _ := os.ReadFile(raw)
	for _, grown := range []struct {
		path string
		size int64
	}{{vhdRaw, 21 * rawtest.MiB}, {filepath.Join(x, "disk.raw"), rawtest.GiB}} {
		b, err := os.ReadFile(grown.path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != grown.size {
			t.Errorf("%s is %d bytes, want %d", grown.path, len(b), grown.size)
			continue
		}
		out, err := exec.Command("sgdisk", "-v", grown.path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v %s: %v\n%s", grown.path, err, out)
		}
		// Past the protective MBR and primary header, the original's bytes
		// up to its old backup are unchanged.
		if string(b[1024:size-33*512]) != string(orig[1024:size-33*512]) {
			t.Errorf("%s does not hold the original disk", grown.path)
		}
	}
}

func TestAWSManifest(t *testing.T) {
	dir := t.TempDir()
	c := rawtest.Cases()[3]
	raw := c.Make(t, dir)
	for _, tc := range []struct{ arch, aws string }{{"x86_64", "x86_64"}, {"aarch64", "arm64"}} {
		a, err := arch.Lookup(tc.arch)
		if err != nil {
			t.Fatal(err)
		}
		out := build(t, "aws", &disk.Input{Payload: disk.Payload{Name: "minimal", Arch: a}}, raw, dir)
		m, err := awsimport.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(raw)
		sum := sha256.Sum256(data)
		r := m.RegisterImage
		switch {
		case m.Disk.File != filepath.Base(raw) || m.Disk.Size != c.Size || m.Disk.SHA256 != hex.EncodeToString(sum[:]):
			t.Errorf("disk %+v, want %s, %d bytes, sha256 %x", m.Disk, filepath.Base(raw), c.Size, sum)
		case r.Architecture != tc.aws || r.BootMode != "uefi" || !r.EnaSupport || r.RootDeviceName != "/dev/xvda":
			t.Errorf("registerImage %+v", r)
		case len(r.BlockDeviceMappings) != 1 || r.BlockDeviceMappings[0].DeviceName != r.RootDeviceName || r.BlockDeviceMappings[0].Ebs.VolumeSize != 1:
			t.Errorf("block device mappings %+v", r.BlockDeviceMappings)
		case m.ImportSnapshot.DiskContainer.Format != "RAW" || m.ImportSnapshot.DiskContainer.UserBucket.S3Key != m.Disk.File:
			t.Errorf("importSnapshot %+v", m.ImportSnapshot)
		}
		// sha256sum agrees.
		if b, err := exec.Command("sha256sum", raw).Output(); err == nil && !strings.HasPrefix(string(b), m.Disk.SHA256) {
			t.Errorf("sha256sum says %s, the manifest %s", b, m.Disk.SHA256)
		}
	}
	// The manifest names a file beside it: a base elsewhere is refused.
	f, _ := disk.Lookup("aws")
	if err := f.Build(context.Background(), &disk.Input{Payload: disk.Payload{Name: "x", Arch: arch.Host()}}, raw, filepath.Join(t.TempDir(), "aws.json")); err == nil || !strings.Contains(err.Error(), "beside") {
		t.Errorf("base in another directory: %v", err)
	}
}

// TestBuildsAreReproducibleAndAtomic builds every container twice (the
// same bytes), and from a bad base (nothing under the final name, no
// temporary file left).
func TestBuildsAreReproducibleAndAtomic(t *testing.T) {
	dir := t.TempDir()
	raw := rawtest.Cases()[3].Make(t, dir)
	bad := filepath.Join(dir, "bad.raw")
	if err := os.WriteFile(bad, make([]byte, 1000), 0o644); err != nil { // not whole sectors
		t.Fatal(err)
	}
	in := &disk.Input{Payload: disk.Payload{Name: "minimal", Arch: arch.Host()}}
	for _, c := range containers {
		if c.name == "aws" {
			continue // sits beside its base: below
		}
		t.Run(c.name, func(t *testing.T) {
			one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
			os.MkdirAll(one, 0o755)
			os.MkdirAll(two, 0o755)
			rawtest.SameFile(t, build(t, c.name, in, raw, one), build(t, c.name, in, raw, two))

			f, _ := disk.Lookup(c.name)
			empty := t.TempDir()
			out := filepath.Join(empty, f.File)
			err := f.Build(context.Background(), in, bad, out)
			if err == nil || !strings.Contains(err.Error(), "sectors") {
				t.Fatalf("from a 1000-byte base: %v, want an error about sectors", err)
			}
			if ents, _ := os.ReadDir(empty); len(ents) != 0 {
				t.Errorf("a failed build left %v", ents)
			}
		})
	}
	// aws.json from its own directory, twice.
	f, _ := disk.Lookup("aws")
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for _, p := range []string{a, b} {
		if err := f.Build(context.Background(), in, raw, p); err != nil {
			t.Fatal(err)
		}
	}
	rawtest.SameFile(t, a, b)
	out := filepath.Join(dir, "bad.json")
	if err := f.Build(context.Background(), in, bad, out); err == nil || !strings.Contains(err.Error(), "sectors") {
		t.Fatalf("aws from a 1000-byte base: %v, want an error about sectors", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed aws build left its file")
	}
}
