package disk_test

import (
	"bytes"
	"context"
	"debug/pe"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/disktest"
	"github.com/kitrun/kitrun/boot/disk/fat"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

func loaders(t testing.TB) *disk.Loaders {
	return &disk.Loaders{PackageDir: filepath.Join(assemble.DefaultCacheDir(), "packages"), CacheDir: t.TempDir()}
}

// minimal builds examples/minimal.yml for a and returns it with the disk
// input that boots it under disktest.
func minimal(t testing.TB, archName string) (*image.Image, *disk.Input) {
	t.Helper()
	a := qemutest.Require(t, archName)
	img := qemutest.BuildSpec(t, a, filepath.Join(qemutest.RepoRoot(t), "examples/minimal.yml"))
	return img, &disk.Input{
		Payload: disk.Payload{Name: img.Manifest.Name, Arch: a, Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: disktest.Cmdline(a, img.Cmdline)},
		Loaders: loaders(t),
	}
}

func build(t testing.TB, name string, in *disk.Input) string {
	t.Helper()
	f, err := disk.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.For(in.Arch); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), f.File)
	if err := f.Build(context.Background(), in, "", out); err != nil {
		if os.Getenv("CI") == "" && strings.Contains(err.Error(), "make deps") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return out
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %s not installed (run `make deps`)", name)
		}
		t.Skipf("%s not installed (run `make deps`)", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sizes returns a file's apparent and allocated bytes.
func sizes(t testing.TB, p string) (apparent, allocated int64) {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size(), disk.Allocated(fi)
}

func fileSize(t testing.TB, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestRawEFIValidators(t *testing.T) {
	for _, archName := range []string{"x86_64", "aarch64"} {
		t.Run(archName, func(t *testing.T) {
			img, in := minimal(t, archName)
			out := build(t, "raw-efi", in)

			if v := tool(t, "sgdisk", "-v", out); !strings.Contains(v, "No problems found") {
				t.Fatalf("sgdisk -v:\n%s", v)
			}
			if p := tool(t, "sgdisk", "-p", out); !strings.Contains(p, "EF00") || !strings.Contains(p, "2048") {
				t.Errorf("sgdisk -p shows no ESP at sector 2048:\n%s", p)
			}
			info := tool(t, "sgdisk", "-i", "1", out)
			if !strings.Contains(info, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") {
				t.Errorf("partition 1 is not an ESP:\n%s", info)
			}

			// The ESP alone, for fsck.vfat (which takes no offset).
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			espImg := filepath.Join(t.TempDir(), "esp.img")
			if err := os.WriteFile(espImg, raw[1<<20:len(raw)-33*512], 0o644); err != nil {
				t.Fatal(err)
			}
			tool(t, "fsck.vfat", "-n", espImg)
			if mi := tool(t, "minfo", "-i", out+"@@1048576", "::"); !strings.Contains(mi, `disk type="FAT32`) {
				t.Errorf("minfo: not FAT32:\n%s", mi)
			}

			bootFile := map[string]string{"x86_64": "BOOTX64.EFI", "aarch64": "BOOTAA64.EFI"}[archName]
			dir := tool(t, "mdir", "-i", out+"@@1048576", "::/EFI/BOOT")
			if !strings.Contains(dir, strings.TrimSuffix(bootFile, ".EFI")) {
				t.Errorf("no %s in \\EFI\\BOOT:\n%s", bootFile, dir)
			}
			efi := filepath.Join(t.TempDir(), bootFile)
			tool(t, "mcopy", "-i", out+"@@1048576", "::/EFI/BOOT/"+bootFile, efi)
			f, err := pe.Open(efi)
			if err != nil {
				t.Fatalf("debug/pe %s: %v", bootFile, err)
			}
			defer f.Close()
			initrd, _ := os.ReadFile(img.Initrd)
			kernel, _ := os.ReadFile(img.Kernel)
			want := map[string][]byte{".cmdline": []byte(in.Cmdline), ".initrd": initrd, ".linux": kernel}
			for _, s := range f.Sections {
				if w, ok := want[s.Name]; ok {
					got, _ := s.Data()
					if len(got) < len(w) || !bytes.Equal(got[:len(w)], w) || s.VirtualSize != uint32(len(w)) {
						t.Errorf("%s of the UKI read back from the disk differs from the payload's", s.Name)
					}
					delete(want, s.Name)
				}
			}
			if len(want) != 0 {
				t.Errorf("UKI lacks sections %v", want)
			}

			apparent, allocated := sizes(t, out)
			payload := fileSize(t, img.Kernel) + fileSize(t, img.Initrd)
			t.Logf("efi.raw: apparent %d bytes, allocated %d bytes; kernel+initrd %d bytes; overhead %d bytes", apparent, allocated, payload, allocated-payload)
			if apparent%(1<<20) != 0 {
				t.Errorf("disk of %d bytes is not a whole number of MiB", apparent)
			}
			if allocated > payload+2<<20 {
				t.Errorf("allocated %d bytes > kernel+initrd+2 MiB (%d)", allocated, payload+2<<20)
			}
		})
	}
}

func TestRawEFIReproducible(t *testing.T) {
	_, in := minimal(t, "x86_64")
	a, err := os.ReadFile(build(t, "raw-efi", in))
	if err != nil {
		t.Fatal(err)
	}
	in.Loaders = loaders(t) // a fresh unpacking of the stub package too
	b, err := os.ReadFile(build(t, "raw-efi", in))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two raw-efi images of the same payload differ")
	}
	in.Cmdline += " quiet"
	c, err := os.ReadFile(build(t, "raw-efi", in))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[512:1024], c[512:1024]) {
		t.Error("another command line, yet the same GPT header (disk GUID not derived from content)")
	}
}

// TestRawEFIBoots boots the minimal example from its raw-efi disk under
// OVMF (x86_64) and AAVMF (aarch64) to kitinit's all-ready.
func TestRawEFIBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	for _, archName := range []string{"x86_64", "aarch64"} {
		t.Run(archName, func(t *testing.T) {
			img, in := minimal(t, archName)
			out := build(t, "raw-efi", in)
			r := disktest.Run(t, disktest.Boot{Arch: in.Arch, Firmware: "efi", Path: out, Format: "raw", Media: disktest.Disk})
			t.Logf("all-ready after %s, %d events", r.Took, len(r.Events))
			checkEvents(t, img, r)
		})
	}
}

func TestRawEFIErrors(t *testing.T) {
	_, in := minimal(t, "x86_64")
	f, _ := disk.Lookup("raw-efi")
	dir := t.TempDir()
	out := filepath.Join(dir, f.File)

	noPkgs := *in
	noPkgs.Loaders = &disk.Loaders{PackageDir: t.TempDir(), CacheDir: t.TempDir()}
	err := f.Build(context.Background(), &noPkgs, "", out)
	if err == nil || !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), "systemd-boot-efi") {
		t.Errorf("without the stub package: %v", err)
	}

	riscv := *in
	riscv.Arch = arch.Arch{Name: "riscv64", Debian: "riscv64"}
	err = f.Build(context.Background(), &riscv, "", out)
	if err == nil || !strings.Contains(err.Error(), "riscv64") || !strings.Contains(err.Error(), "aarch64, x86_64") {
		t.Errorf("arch without a stub: %v", err)
	}
	if err := f.For(riscv.Arch); err == nil {
		t.Error("raw-efi claims to boot on riscv64")
	}

	badKernel := *in
	badKernel.Kernel = in.Initrd
	err = f.Build(context.Background(), &badKernel, "", out)
	if err == nil || !strings.Contains(err.Error(), "not an EFI-stub kernel") {
		t.Errorf("initrd as kernel: %v", err)
	}

	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed builds left %v", ents)
	}
}

// BenchmarkRawEFI builds the minimal example's raw-efi image from a warm
// cache (image built, stub unpacked) and reports its size against the
// kernel and initramfs it boots.
func BenchmarkRawEFI(b *testing.B) {
	for _, archName := range []string{"x86_64", "aarch64"} {
		b.Run(archName, func(b *testing.B) {
			img, in := minimal(b, archName)
			f, _ := disk.Lookup("raw-efi")
			dir := b.TempDir()
			out := filepath.Join(dir, f.File)
			if err := f.Build(context.Background(), in, "", out); err != nil { // warm
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := f.Build(context.Background(), in, "", out); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			apparent, allocated := sizes(b, out)
			payload := fileSize(b, img.Kernel) + fileSize(b, img.Initrd)
			b.ReportMetric(float64(apparent), "apparent-B")
			b.ReportMetric(float64(allocated), "allocated-B")
			b.ReportMetric(float64(payload), "kernel+initrd-B")
			b.ReportMetric(float64(allocated-payload), "overhead-B")
		})
	}
}

// TestESPForISO makes the FAT16 image an ISO's El Torito EFI entry takes,
// at an offset inside a larger file as an ISO writer would, checks it, and
// boots it under OVMF as a whole disk without partition table (firmware
// reads it the same way through El Torito).
func TestESPForISO(t *testing.T) {
	img, in := minimal(t, "x86_64")
	esp, err := disk.NewESP(context.Background(), in)
	if err != nil {
		if os.Getenv("CI") == "" && strings.Contains(err.Error(), "make deps") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	o := fat.Options{Type: fat.FAT16}
	size, err := esp.MinSize(o)
	if err != nil {
		t.Fatal(err)
	}
	const at = 17 * 2048
	p := filepath.Join(t.TempDir(), "iso.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := esp.Write(io.NewOffsetWriter(f, at), o)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != size {
		t.Errorf("wrote %d bytes, MinSize said %d", res.Size, size)
	}
	payload := fileSize(t, img.Kernel) + fileSize(t, img.Initrd)
	t.Logf("FAT16 ESP: %d bytes for a %d-byte UKI (kernel+initrd %d)", res.Size, esp.UKI.Size(), payload)
	if res.Size > esp.UKI.Size()+256<<10 {
		t.Errorf("FAT16 ESP of %d bytes for a %d-byte UKI", res.Size, esp.UKI.Size())
	}
	raw, _ := os.ReadFile(p)
	alone := filepath.Join(t.TempDir(), "esp.img")
	os.WriteFile(alone, raw[at:], 0o644)
	tool(t, "fsck.vfat", "-n", alone)
	if mi := tool(t, "minfo", "-i", fmt.Sprintf("%s@@%d", p, at), "::"); !strings.Contains(mi, `disk type="FAT16`) {
		t.Errorf("minfo: not FAT16:\n%s", mi)
	}
	got := filepath.Join(t.TempDir(), "boot.efi")
	tool(t, "mcopy", "-i", fmt.Sprintf("%s@@%d", p, at), "::/EFI/BOOT/BOOTX64.EFI", got)
	if fileSize(t, got) != esp.UKI.Size() {
		t.Errorf("BOOTX64.EFI read back is %d bytes, the UKI %d", fileSize(t, got), esp.UKI.Size())
	}
	if testing.Short() {
		return
	}
	r := disktest.Run(t, disktest.Boot{Arch: in.Arch, Firmware: "efi", Path: alone, Media: disktest.Disk})
	t.Logf("all-ready after %s", r.Took)
	checkEvents(t, img, r)
}

// checkEvents checks that a disk boot went as a direct boot of the image
// does: every service of the manifest ready, nothing failed.
func checkEvents(t *testing.T, img *image.Image, r disktest.Result) {
	t.Helper()
	ready := map[string]bool{}
	for _, e := range r.Events {
		switch e.Kind {
		case initproto.EvServiceReady:
			ready[e.Name] = true
		case initproto.EvServiceFailed, initproto.EvTaskFailed, initproto.EvError:
			t.Errorf("event %s %s: %s", e.Kind, e.Name, e.Detail)
		}
	}
	for _, s := range img.Manifest.Services {
		if !ready[s] {
			t.Errorf("service %s never became ready; events: %+v", s, r.Events)
		}
	}
}
