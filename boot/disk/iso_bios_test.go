package disk_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/disktest"
)

func mustMatch(t testing.TB, what, text, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(text) {
		t.Errorf("%s lacks /%s/:\n%s", what, re, text)
	}
}

// checkBIOSImage validates a BIOS image with isoinfo, xorriso and partx,
// and checks that the files isolinux reads are the payload's.
func checkBIOSImage(t *testing.T, p string, in *disk.Input) {
	t.Helper()
	d := tool(t, "isoinfo", "-d", "-i", p)
	mustMatch(t, "isoinfo -d", d, `Volume id: MINIMAL\n`)
	mustMatch(t, "isoinfo -d", d, `El Torito VD version 1 found`)
	l := tool(t, "isoinfo", "-l", "-i", p)
	for _, name := range []string{"KERNEL.;1", "INITRD.IMG;1", "ISOLINUX.BIN;1", "LDLINUX.C32;1", "ISOLINUX.CFG;1", "BOOT.CAT;1"} {
		mustMatch(t, "isoinfo -l", l, regexp.QuoteMeta(name))
	}
	r := tool(t, "xorriso", "-indev", p, "-report_el_torito", "plain", "-report_system_area", "plain")
	mustMatch(t, "xorriso", r, `El Torito boot img\s*:\s*1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+\d+\n`)
	mustMatch(t, "xorriso", r, `El Torito img path\s*:\s*1\s+/ISOLINUX/ISOLINUX.BIN\n`)
	mustMatch(t, "xorriso", r, `El Torito img opts\s*:\s*1\s+boot-info-table isohybrid-suitable\n`)
	mustMatch(t, "xorriso", r, `System area summary: MBR isohybrid cyl-align-on\n`)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%(1<<20) != 0 {
		t.Errorf("size %d is not whole MiB cylinders", st.Size())
	}
	parts := tool(t, "partx", "-g", "-P", "-o", "NR,START,SECTORS,TYPE,FLAGS", p)
	if want := fmt.Sprintf(`NR="1" START="0" SECTORS="%d" TYPE="0x17" FLAGS="0x80"`, st.Size()/512); strings.TrimSpace(parts) != want {
		t.Errorf("partx: %s, want %s", parts, want)
	}

	x := filepath.Join(t.TempDir(), "x")
	tool(t, "xorriso", "-osirrox", "on", "-indev", p, "-extract", "/", x)
	for rel, src := range map[string]string{"KERNEL": in.Kernel, "INITRD.IMG": in.Initrd} {
		got, err := os.ReadFile(filepath.Join(x, rel))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(src)
		if !bytes.Equal(got, want) {
			t.Errorf("%s in the image differs from %s", rel, src)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(x, "ISOLINUX", "ISOLINUX.CFG"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "  append initrd=/initrd.img "+in.Cmdline+"\n") {
		t.Errorf("isolinux.cfg does not carry the command line %q:\n%s", in.Cmdline, cfg)
	}
}

// TestBIOSFormats builds iso-bios and raw-bios of the minimal example,
// validates them and boots them on SeaBIOS to kitinit's all-ready: iso-bios
// as a CD-ROM and (hybrid) as a disk, raw-bios as a disk.
func TestBIOSFormats(t *testing.T) {
	img, in := minimal(t, "x86_64")
	iso := build(t, "iso-bios", in)
	raw := build(t, "raw-bios", in)
	checkBIOSImage(t, iso, in)
	checkBIOSImage(t, raw, in)

	again := build(t, "iso-bios", in)
	if b1, b2 := read(t, iso), read(t, again); !bytes.Equal(b1, b2) {
		t.Error("two builds of iso-bios differ")
	}
	if testing.Short() {
		return
	}
	// isolinux's banner names the path it took: ETCD when El Torito loaded
	// it from a CD, EHDD when isohdpfx.bin loaded it from a disk.
	for _, b := range []struct {
		name  string
		path  string
		media disktest.Media
		mode  string
	}{
		{"iso-bios as CD-ROM", iso, disktest.CDROM, "ETCD"},
		{"iso-bios as disk", iso, disktest.Disk, "EHDD"},
		{"raw-bios as disk", raw, disktest.Disk, "EHDD"},
	} {
		t.Run(b.name, func(t *testing.T) {
			r := disktest.Run(t, disktest.Boot{Arch: in.Arch, Firmware: "bios", Path: b.path, Media: b.media})
			t.Logf("all-ready after %s, %d events", r.Took, len(r.Events))
			checkEvents(t, img, r)
			if !regexp.MustCompile(`ISOLINUX 6\.\d+ \d+ ` + b.mode).MatchString(r.Console) {
				t.Errorf("console does not show isolinux started by the %s path:\n%s", b.mode, r.Console)
			}
		})
	}
}

var benchFormats = []string{"iso-bios", "raw-bios", "iso-efi"}

func read(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBIOSBadInput: an arch without BIOS, a command line a loader cannot
// carry and a missing kernel are refused, and nothing appears under the
// output's name or beside it.
func TestBIOSBadInput(t *testing.T) {
	x86, _ := arch.Lookup("x86_64")
	arm, _ := arch.Lookup("aarch64")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	os.WriteFile(kernel, []byte("k"), 0o644)
	in := func(a arch.Arch, cmdline, k string) *disk.Input {
		return &disk.Input{Payload: disk.Payload{Name: "bad", Arch: a, Kernel: k, Initrd: kernel, Cmdline: cmdline}, Loaders: loaders(t)}
	}
	cases := []struct {
		name, format string
		in           *disk.Input
		want         []string
	}{
		{"aarch64", "iso-bios", in(arm, "quiet", kernel), []string{"iso-bios cannot boot on aarch64", "formats for aarch64: ", "iso-efi", "raw-efi"}},
		{"aarch64 raw", "raw-bios", in(arm, "quiet", kernel), []string{"raw-bios cannot boot on aarch64"}},
		{"newline", "iso-bios", in(x86, "quiet\ndefault evil", kernel), []string{"control character"}},
		{"too long", "raw-bios", in(x86, strings.Repeat("a", 2040), kernel), []string{"at most 2047"}},
		{"no kernel", "iso-bios", in(x86, "quiet", filepath.Join(dir, "missing")), []string{"missing"}},
	}
	out := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := disk.Lookup(c.format)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Build(context.Background(), c.in, "", filepath.Join(out, f.File))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("left %v behind", ents)
			}
		})
	}
	if _, err := disk.Lookup("iso-bois"); err == nil || !strings.Contains(err.Error(), "iso-bios") {
		t.Errorf("unknown format: %v", err)
	}
}

// BenchmarkWarmBuild measures a warm build of each of these formats for
// the minimal example (the image assembled and the loader packages
// unpacked) and reports the output's size and its overhead over kernel +
// initrd.
func BenchmarkWarmBuild(b *testing.B) {
	_, in := minimal(b, "x86_64")
	for _, name := range benchFormats {
		b.Run(name, func(b *testing.B) {
			f, err := disk.Lookup(name)
			if err != nil {
				b.Fatal(err)
			}
			out := filepath.Join(b.TempDir(), f.File)
			if err := f.Build(context.Background(), in, "", out); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := f.Build(context.Background(), in, "", out); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			size := fileSize(b, out)
			payload := fileSize(b, in.Kernel) + fileSize(b, in.Initrd)
			b.ReportMetric(float64(size), "image-bytes")
			b.ReportMetric(float64(payload), "kernel+initrd-bytes")
			b.ReportMetric(float64(size-payload), "overhead-bytes")
		})
	}
}
