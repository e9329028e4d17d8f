package iso9660_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/iso9660"
)

// tool returns a validator's path, or skips the test (fails it in CI).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %s not installed (run `make deps`)", name)
		}
		t.Skipf("%s not installed (run `make deps`)", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeISO writes img into a temporary file and returns its path.
func writeISO(t *testing.T, img *iso9660.Image) (string, *iso9660.Layout) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.iso")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lay, err := iso9660.Write(f, img)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(lay.Sectors)*iso9660.SectorSize {
		t.Fatalf("file is %d bytes, layout says %d sectors", st.Size(), lay.Sectors)
	}
	return p, lay
}

// tree is a volume with a large file from disk, an empty file, a
// directory of many entries (its records span several sectors), nesting
// down to ISO 9660's limit and names that sort by the standard's rules.
func tree(t *testing.T) (*iso9660.Image, map[string][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	src := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"DATA/BIG.BIN": big}
	img := &iso9660.Image{VolumeID: "KITRUN_TEST", Files: []iso9660.File{{Path: "DATA/BIG.BIN", Source: src}}}
	add := func(p string, data []byte) {
		img.Files = append(img.Files, iso9660.File{Path: p, Data: data})
		want[p] = data
	}
	add("EMPTY", nil)
	add("KERNEL", []byte("not a kernel"))
	add("A.B", []byte("a.b"))
	add("A_", []byte("a_"))
	add("A1/B2/C3/D4/E5/F6/G7/DEEP.TXT", []byte("eight levels"))
	// A produced file, written back to front with a hole in the middle.
	produced := make([]byte, 100_000)
	for i := range produced {
		if i < 30_000 || i >= 60_000 {
			produced[i] = byte(i % 251)
		}
	}
	img.Files = append(img.Files, iso9660.File{Path: "GEN/PRODUCED.IMG", Size: int64(len(produced)), Write: func(w io.WriterAt) error {
		if _, err := w.WriteAt(produced[60_000:], 60_000); err != nil {
			return err
		}
		_, err := w.WriteAt(produced[:30_000], 0)
		return err
	}})
	want["GEN/PRODUCED.IMG"] = produced
	for i := range 120 {
		add(fmt.Sprintf("MANY/FILE%04d.DAT", i), []byte(strings.Repeat("x", i)))
	}
	return img, want
}

// TestTreeReadsBack writes a tree and reads it back with independent
// readers: isoinfo's descriptor dump and xorriso's extraction, byte for
// byte.
func TestTreeReadsBack(t *testing.T) {
	img, want := tree(t)
	p, lay := writeISO(t, img)

	d := run(t, "isoinfo", "-d", "-i", p)
	for _, line := range []string{"Volume id: KITRUN_TEST", fmt.Sprintf("Volume size is: %d", lay.Sectors), "Logical block size is: 2048"} {
		if !strings.Contains(d, line) {
			t.Errorf("isoinfo -d lacks %q:\n%s", line, d)
		}
	}
	if strings.Contains(d, "El Torito") {
		t.Errorf("no boot catalog was asked for:\n%s", d)
	}
	listing := run(t, "isoinfo", "-f", "-i", p)
	if !strings.Contains(listing, "/A1/B2/C3/D4/E5/F6/G7/DEEP.TXT;1") || !strings.Contains(listing, "/KERNEL.;1") {
		t.Errorf("isoinfo -f:\n%s", listing)
	}

	out := filepath.Join(t.TempDir(), "x")
	run(t, "xorriso", "-osirrox", "on", "-indev", p, "-extract", "/", out)
	got := 0
	err := filepath.WalkDir(out, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w, ok := want[filepath.ToSlash(rel)]
		if !ok {
			t.Errorf("extracted %s, which was not written", rel)
		} else if !bytes.Equal(data, w) {
			t.Errorf("%s: read back %d bytes that differ from the %d written", rel, len(data), len(w))
		}
		got++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("extracted %d files, wrote %d", got, len(want))
	}
}

// loaderFile takes a boot loader file from the Debian packages `make deps`
// downloaded.
func loaderFile(t *testing.T, pkg, member string) string {
	t.Helper()
	l := &disk.Loaders{PackageDir: filepath.Join(assemble.DefaultCacheDir(), "packages"), CacheDir: filepath.Join(t.TempDir(), "loaders")}
	p, err := l.File(context.Background(), pkg, "all", member)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("%v (run `make deps`)", err)
	}
	return p
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mkfat makes a small FAT image with the host's mkfs.fat, standing in for
// an EFI system partition.
func mkfat(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "efi.img")
	run(t, "mkfs.fat", "-C", "-i", "12345678", p, "1440")
	return p
}

func field(t *testing.T, report, re string) []string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("report lacks /%s/:\n%s", re, report)
	}
	return m
}

// TestIsohybridBIOS checks the El Torito BIOS entry, the boot information
// table and the isohybrid MBR with xorriso (which recognises isolinux's
// boot-info-table and the isohybrid layout on its own) and partx.
func TestIsohybridBIOS(t *testing.T) {
	isolinux := loaderFile(t, "isolinux", "usr/lib/ISOLINUX/isolinux.bin")
	mbr := read(t, loaderFile(t, "isolinux", "usr/lib/ISOLINUX/isohdpfx.bin"))
	img, _ := tree(t)
	img.Files = append(img.Files, iso9660.File{Path: "ISOLINUX/ISOLINUX.BIN", Source: isolinux})
	img.Boot = &iso9660.ElTorito{Catalog: "ISOLINUX/BOOT.CAT", BIOS: "ISOLINUX/ISOLINUX.BIN", BIOSLoadSectors: 4}
	img.Hybrid = &iso9660.Hybrid{BIOSCode: mbr}
	p, lay := writeISO(t, img)
	if lay.Sectors%512 != 0 {
		t.Errorf("hybrid image of %d sectors is not padded to whole MiB cylinders", lay.Sectors)
	}
	bios := lay.Extents["ISOLINUX/ISOLINUX.BIN"]

	r := run(t, "xorriso", "-indev", p, "-report_el_torito", "plain", "-report_system_area", "plain")
	field(t, r, fmt.Sprintf(`El Torito catalog\s*:\s*%d\s+1\n`, lay.Extents["ISOLINUX/BOOT.CAT"].Sector))
	field(t, r, fmt.Sprintf(`El Torito boot img\s*:\s*1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+%d\n`, bios.Sector))
	field(t, r, `El Torito img path\s*:\s*1\s+/ISOLINUX/ISOLINUX.BIN\n`)
	field(t, r, `El Torito img opts\s*:\s*1\s+boot-info-table isohybrid-suitable\n`)
	field(t, r, `System area summary: MBR isohybrid cyl-align-on\n`)
	field(t, r, `MBR heads per cyl\s*:\s*64\n`)
	field(t, r, `MBR secs per head\s*:\s*32\n`)
	field(t, r, fmt.Sprintf(`MBR partition\s*:\s*1\s+0x80\s+0x17\s+0\s+%d\n`, lay.Sectors*4))
	if strings.Contains(r, "UEFI") {
		t.Errorf("no EFI entry was asked for:\n%s", r)
	}

	parts := run(t, "partx", "-g", "-P", "-o", "NR,START,SECTORS,TYPE,FLAGS,SCHEME", p)
	if want := fmt.Sprintf(`NR="1" START="0" SECTORS="%d" TYPE="0x17" FLAGS="0x80" SCHEME="dos"`, lay.Sectors*4); strings.TrimSpace(parts) != want {
		t.Errorf("partx: %s\nwant %s", parts, want)
	}
	blk := run(t, "blkid", "-p", p)
	if !strings.Contains(blk, fmt.Sprintf(`PTUUID="%08x"`, lay.DiskID)) || !strings.Contains(blk, `TYPE="iso9660"`) {
		t.Errorf("blkid: %s (disk ID %08x)", blk, lay.DiskID)
	}

	// The MBR is isohdpfx.bin with the boot image's 512-byte sector at 432.
	raw := read(t, p)
	if !bytes.Equal(raw[:432], mbr) {
		t.Error("MBR boot code is not isohdpfx.bin")
	}
	if got := uint32(raw[432]) | uint32(raw[433])<<8 | uint32(raw[434])<<16 | uint32(raw[435])<<24; got != bios.Sector*4 {
		t.Errorf("MBR points at sector %d, isolinux.bin is at %d", got, bios.Sector*4)
	}
}

// TestElToritoEFI checks a catalog with both a BIOS and an EFI entry, and
// an EFI-only hybrid whose MBR has one EFI system partition over the FAT
// image.
func TestElToritoEFI(t *testing.T) {
	isolinux := loaderFile(t, "isolinux", "usr/lib/ISOLINUX/isolinux.bin")
	fat := mkfat(t)

	both := &iso9660.Image{VolumeID: "BOTH", Files: []iso9660.File{
		{Path: "ISOLINUX/ISOLINUX.BIN", Source: isolinux},
		{Path: "EFI.IMG", Source: fat},
	}, Boot: &iso9660.ElTorito{Catalog: "BOOT.CAT", BIOS: "ISOLINUX/ISOLINUX.BIN", EFI: "EFI.IMG"}}
	p, lay := writeISO(t, both)
	r := run(t, "xorriso", "-indev", p, "-report_el_torito", "plain")
	field(t, r, fmt.Sprintf(`El Torito boot img\s*:\s*1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+%d\n`, lay.Extents["ISOLINUX/ISOLINUX.BIN"].Sector))
	field(t, r, fmt.Sprintf(`El Torito boot img\s*:\s*2\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+2880\s+%d\n`, lay.Extents["EFI.IMG"].Sector))

	efiOnly := &iso9660.Image{VolumeID: "EFI", Files: []iso9660.File{{Path: "EFI.IMG", Source: fat}},
		Boot:   &iso9660.ElTorito{Catalog: "BOOT.CAT", EFI: "EFI.IMG"},
		Hybrid: &iso9660.Hybrid{}}
	p, lay = writeISO(t, efiOnly)
	r = run(t, "xorriso", "-indev", p, "-report_el_torito", "plain")
	field(t, r, fmt.Sprintf(`El Torito boot img\s*:\s*1\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+2880\s+%d\n`, lay.Extents["EFI.IMG"].Sector))
	if strings.Contains(r, "BIOS") {
		t.Errorf("EFI-only catalog has a BIOS entry:\n%s", r)
	}
	parts := run(t, "partx", "-g", "-P", "-o", "NR,START,SECTORS,TYPE,FLAGS", p)
	if want := fmt.Sprintf(`NR="1" START="%d" SECTORS="2880" TYPE="0xef" FLAGS="0x0"`, lay.Extents["EFI.IMG"].Sector*4); strings.TrimSpace(parts) != want {
		t.Errorf("partx: %s\nwant %s", parts, want)
	}
	// The partition is the FAT image itself: fsck.fat checks it in place.
	part := filepath.Join(t.TempDir(), "part")
	raw := read(t, p)
	start := int64(lay.Extents["EFI.IMG"].Sector) * iso9660.SectorSize
	if err := os.WriteFile(part, raw[start:start+lay.Extents["EFI.IMG"].Size], 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "fsck.fat", "-n", part)
}

// TestReproducible: the same image twice, with the sources' times changed
// in between, gives the same bytes.
func TestReproducible(t *testing.T) {
	isolinux := loaderFile(t, "isolinux", "usr/lib/ISOLINUX/isolinux.bin")
	mbr := read(t, loaderFile(t, "isolinux", "usr/lib/ISOLINUX/isohdpfx.bin"))
	img, _ := tree(t)
	img.Files = append(img.Files, iso9660.File{Path: "ISOLINUX/ISOLINUX.BIN", Source: isolinux})
	img.Boot = &iso9660.ElTorito{Catalog: "ISOLINUX/BOOT.CAT", BIOS: "ISOLINUX/ISOLINUX.BIN"}
	img.Hybrid = &iso9660.Hybrid{BIOSCode: mbr}
	p1, _ := writeISO(t, img)
	src := img.Files[0].Source
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	p2, _ := writeISO(t, img)
	if !bytes.Equal(read(t, p1), read(t, p2)) {
		t.Fatal("two writes of the same image differ")
	}
	// A change of content changes the disk signature.
	img.Files = append(img.Files, iso9660.File{Path: "MORE", Data: []byte("more")})
	_, l3 := writeISO(t, img)
	_, l1 := writeISO(t, &iso9660.Image{VolumeID: img.VolumeID, Files: img.Files[:len(img.Files)-1], Boot: img.Boot, Hybrid: img.Hybrid})
	if l1.DiskID == l3.DiskID {
		t.Errorf("different content, same disk ID %08x", l1.DiskID)
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func TestBadInput(t *testing.T) {
	notIsolinux := []byte(strings.Repeat("\x90", 4096))
	cases := []struct {
		name string
		img  iso9660.Image
		want string
	}{
		{"lower case", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "kernel"}}}, `"kernel" has 'k'`},
		{"long name", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "NINECHARS.TXT"}}}, "level 1"},
		{"long extension", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A.TEXT"}}}, "level 1"},
		{"two dots", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A.B.C"}}}, "'.'"},
		{"deep", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A/B/C/D/E/F/G/H/I"}}}, "8 levels"},
		{"long dir", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "DIRECTORY/A"}}}, "1 to 8"},
		{"twice", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A"}, {Path: "A"}}}, "twice"},
		{"clash", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A"}, {Path: "A."}}}, "clashes"},
		{"volume", iso9660.Image{VolumeID: "my disk", Files: nil}, "volume ID"},
		{"no volume", iso9660.Image{}, "volume ID"},
		{"missing source", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A", Source: "/nonexistent/kernel"}}}, "/nonexistent/kernel"},
		{"boot not a file", iso9660.Image{VolumeID: "V", Boot: &iso9660.ElTorito{Catalog: "C", BIOS: "B"}}, "not one of the files"},
		{"no catalog", iso9660.Image{VolumeID: "V", Boot: &iso9660.ElTorito{BIOS: "B"}}, "boot catalog"},
		{"no boot image", iso9660.Image{VolumeID: "V", Boot: &iso9660.ElTorito{Catalog: "C"}}, "BIOS or an EFI"},
		{"not isolinux", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "B", Data: notIsolinux}},
			Boot: &iso9660.ElTorito{Catalog: "C", BIOS: "B"}, Hybrid: &iso9660.Hybrid{BIOSCode: make([]byte, 432)}}, "isolinux hybrid entry point"},
		{"short MBR code", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "B", Data: notIsolinux}},
			Boot: &iso9660.ElTorito{Catalog: "C", EFI: "B"}, Hybrid: &iso9660.Hybrid{BIOSCode: make([]byte, 440)}}, "432"},
		{"write outside", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A", Size: 10, Write: func(w io.WriterAt) error {
			_, err := w.WriteAt([]byte("12345"), 8)
			return err
		}}}}, "outside the file's 10 bytes"},
		{"two contents", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "A", Data: []byte("x"), Write: func(io.WriterAt) error { return nil }}}}, "more than one source"},
		{"produced BIOS image", iso9660.Image{VolumeID: "V", Files: []iso9660.File{{Path: "B", Size: 4096, Write: func(io.WriterAt) error { return nil }}},
			Boot: &iso9660.ElTorito{Catalog: "C", BIOS: "B"}}, "must be a host file or Data"},
		{"hybrid without boot", iso9660.Image{VolumeID: "V", Hybrid: &iso9660.Hybrid{}}, "needs BIOS boot code or an El Torito EFI image"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := iso9660.Write(discard{}, &c.img)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}
