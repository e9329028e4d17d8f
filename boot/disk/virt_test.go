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
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/boot/disk/disktest"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// containers are the formats that wrap raw-efi, with qemu-img's name for
// those QEMU reads.
var containers = []struct{ name, qemu string }{
	{"qcow2", "qcow2"}, {"vhd", "vpc"}, {"vhdx", "vhdx"}, {"vmdk", "vmdk"}, {"gcp", ""}, {"aws", ""},
}

func wrap(t *testing.T, format string, in *disk.Input, base, dir string) string {
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

// TestContainersOfRawEFI wraps the minimal example's raw-efi disk in
// each container: QEMU reads back exactly the raw disk from each, GCP's
// disk.raw is that disk grown to 1 GiB with a valid GPT, and each
// container QEMU takes boots under OVMF to all-ready with every service
// of the image ready.
func TestContainersOfRawEFI(t *testing.T) {
	img, in := minimal(t, "x86_64")
	raw := build(t, "raw-efi", in)
	for _, c := range containers {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out := wrap(t, c.name, in, raw, filepath.Dir(raw))
			switch c.name {
			case "aws":
				if _, err := awsimport.Read(out); err != nil {
					t.Fatal(err)
				}
				return
			case "gcp":
				rawtest.RequireTool(t, "tar")
				if b, err := exec.Command("tar", "-xzf", out, "-C", dir).CombinedOutput(); err != nil {
					t.Fatalf("tar: %v\n%s", err, b)
				}
				got := filepath.Join(dir, "disk.raw")
				if v, err := exec.Command("sgdisk", "-v", got).CombinedOutput(); err != nil || !strings.Contains(string(v), "No problems found") {
					t.Errorf("sgdisk -v disk.raw: %v\n%s", err, v)
				}
				if st, err := os.Stat(got); err != nil || st.Size() != rawtest.GiB {
					t.Errorf("disk.raw: %v, want %d bytes", err, rawtest.GiB)
				}
				return
			}
			if c.name != "vhd" {
				rawtest.Check(t, c.qemu, out)
			}
			rawtest.SameAsRaw(t, c.qemu, out, raw) // raw-efi is whole MiB: VHD adds nothing
			if testing.Short() {
				return
			}
			r := disktest.Run(t, disktest.Boot{Arch: in.Arch, Firmware: "efi", Path: out, Format: c.qemu, Media: disktest.Disk})
			t.Logf("%s: all-ready after %s, %d events", c.name, r.Took, len(r.Events))
			checkEvents(t, img, r)
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
	rawtest.QemuImg(t, "convert", "-f", "vpc", "-O", "raw", wrap(t, "vhd", in, raw, dir), vhdRaw)
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	if b, err := exec.Command("tar", "-xzf", wrap(t, "gcp", in, raw, dir), "-C", x).CombinedOutput(); err != nil {
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
		out := wrap(t, "aws", &disk.Input{Payload: disk.Payload{Name: "minimal", Arch: a}}, raw, dir)
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
			rawtest.SameFile(t, wrap(t, c.name, in, raw, one), wrap(t, c.name, in, raw, two))

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
