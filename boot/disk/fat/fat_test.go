package fat_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/disk/fat"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI: %s not installed (run `make deps`)", tool)
			}
			t.Skipf("%s not installed (run `make deps`)", tool)
		}
	}
}

// content returns n deterministic bytes for the file at path.
func content(path string, n int64) []byte {
	r := rand.New(rand.NewPCG(uint64(len(path)), uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func bytesFile(path string, data []byte) fat.File {
	return fat.File{Path: path, Size: int64(len(data)), Write: func(w io.WriterAt) error {
		// In pieces, last piece first: the volume must not care.
		for off := int64(len(data)) / 4096 * 4096; off >= 0; off -= 4096 {
			end := min(off+4096, int64(len(data)))
			if _, err := w.WriteAt(data[off:end], off); err != nil {
				return err
			}
		}
		return nil
	}}
}

// sample is a tree that exercises what a volume must get right: nested
// directories, long and lower-case names, short-name collisions, an empty
// file, a directory of more than one cluster and a large file.
func sample() map[string][]byte {
	files := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI":                 content("boot", 3<<20+123),
		"EFI/Linux/kitrun image.efi":           content("uki", 70001),
		"loader/entries/a-very-long-name.conf": []byte("title kitrun\n"),
		"readme.txt":                           []byte("lower-case 8.3 name\n"),
		"empty":                                {},
		"Ünïcode name.txt":                     []byte("utf-16 long name\n"),
	}
	for i := range 40 {
		files[fmt.Sprintf("many/long file name number %02d.data", i)] = content(fmt.Sprint(i), int64(i*100))
	}
	return files
}

func toFiles(m map[string][]byte) []fat.File {
	var fs []fat.File
	for p, b := range m {
		fs = append(fs, bytesFile(p, b))
	}
	return fs
}

func writeImage(t *testing.T, path string, offset int64, files []fat.File, o fat.Options) fat.Result {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := fat.Write(io.NewOffsetWriter(f, offset), files, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(offset + res.Size); err != nil {
		t.Fatal(err)
	}
	return res
}

func fsck(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command("fsck.vfat", "-n", "-v", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.vfat -n %s: %v\n%s", img, err, out)
	}
	// Findings it would fix, in case a version exits 0 on one.
	for _, bad := range []string{"Auto-correcting", "Leaving filesystem unchanged", "Dirty bit", "Free cluster summary"} {
		if strings.Contains(string(out), bad) {
			t.Fatalf("fsck.vfat -n %s reports %q:\n%s", img, bad, out)
		}
	}
}

// readBack copies every file out of the volume with mtools and compares.
func readBack(t *testing.T, img string, offset int64, want map[string][]byte) {
	t.Helper()
	spec := img
	if offset != 0 {
		spec = fmt.Sprintf("%s@@%d", img, offset)
	}
	dir := t.TempDir()
	out, err := exec.Command("mcopy", "-s", "-n", "-m", "-i", spec, "::*", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mcopy -s -i %s: %v\n%s", spec, err, out)
	}
	n := 0
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		w, ok := want[rel]
		if !ok {
			t.Errorf("volume holds %s, which was not written", rel)
			return nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, w) {
			t.Errorf("%s: read back %d bytes, wrote %d (or they differ)", rel, len(got), len(w))
		}
		if !fi.ModTime().Equal(time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC)) {
			t.Errorf("%s: time %s", rel, fi.ModTime())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("read back %d files, wrote %d", n, len(want))
	}
}

func TestValidatorsAcceptVolumes(t *testing.T) {
	need(t, "fsck.vfat", "mcopy", "mdir")
	stamp := time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC)
	want := sample()
	for _, tc := range []struct {
		name string
		o    fat.Options
	}{
		{"fat32", fat.Options{Label: "KITRUN", Time: stamp}},
		{"fat32-sized", fat.Options{Time: stamp, Size: 100 << 20, HiddenSectors: 2048}},
		{"fat16", fat.Options{Type: fat.FAT16, Label: "EFIBOOT", Time: stamp}},
		{"fat16-free", fat.Options{Type: fat.FAT16, Time: stamp, Free: 40 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fat.img")
			res := writeImage(t, img, 0, toFiles(want), tc.o)
			fsck(t, img)
			t.Setenv("TZ", "UTC") // mtools shows FAT's local times as local
			readBack(t, img, 0, want)
			if tc.o.Size != 0 && res.Size != tc.o.Size {
				t.Errorf("size %d, asked %d", res.Size, tc.o.Size)
			}
			out, err := exec.Command("minfo", "-i", img, "::").CombinedOutput()
			if err != nil {
				t.Fatalf("minfo: %v\n%s", err, out)
			}
			typ := "FAT32"
			if tc.o.Type == fat.FAT16 {
				typ = "FAT16"
			}
			if !strings.Contains(string(out), `disk type="`+typ) {
				t.Errorf("minfo does not say %s:\n%s", typ, out)
			}
			if tc.o.Label != "" && !strings.Contains(string(out), fmt.Sprintf(`disk label="%-11s"`, tc.o.Label)) {
				t.Errorf("minfo does not show label %s:\n%s", tc.o.Label, out)
			}
			if lab, err := exec.Command("mlabel", "-s", "-i", img, "::").CombinedOutput(); err != nil || (tc.o.Label != "" && !strings.Contains(string(lab), tc.o.Label)) {
				t.Errorf("mlabel -s: %v %s", err, lab)
			}
			t.Logf("%s: %d bytes, volume ID %08x", tc.name, res.Size, res.VolumeID)
		})
	}
}

// TestAtOffset writes a volume inside a larger file, as a partition of a
// disk image, and reads it back there.
func TestAtOffset(t *testing.T) {
	need(t, "mcopy")
	t.Setenv("TZ", "UTC")
	want := map[string][]byte{"EFI/BOOT/BOOTAA64.EFI": content("x", 1<<20)}
	img := filepath.Join(t.TempDir(), "disk.img")
	writeImage(t, img, 1<<20, toFiles(want), fat.Options{Time: time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC), HiddenSectors: 2048})
	readBack(t, img, 1<<20, want)
}

func TestReproducibleAndContentDerivedID(t *testing.T) {
	dir := t.TempDir()
	files := toFiles(sample())
	var ids []uint32
	var images [][]byte
	for i, fs := range [][]fat.File{files, files, toFiles(map[string][]byte{"EFI/BOOT/BOOTX64.EFI": content("other", 1000)})} {
		p := filepath.Join(dir, fmt.Sprint(i))
		res := writeImage(t, p, 0, fs, fat.Options{})
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.VolumeID)
		images = append(images, b)
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Error("two volumes of the same files differ")
	}
	if ids[0] != ids[1] || ids[0] == ids[2] {
		t.Errorf("volume IDs %08x %08x (same files), %08x (other files)", ids[0], ids[1], ids[2])
	}
}

func TestBadInput(t *testing.T) {
	ok := func(p string) fat.File { return bytesFile(p, []byte("x")) }
	for _, tc := range []struct {
		files []fat.File
		o     fat.Options
		want  string
	}{
		{[]fat.File{ok("../x")}, fat.Options{}, "dot path component"},
		{[]fat.File{ok("a//b")}, fat.Options{}, "bad path"},
		{[]fat.File{ok("a/b"), ok("a")}, fat.Options{}, "given twice"},
		{[]fat.File{ok("A"), ok("a")}, fat.Options{}, "differ only in case"},
		{[]fat.File{ok("a:b")}, fat.Options{}, "does not allow"},
		{[]fat.File{ok("x.")}, fat.Options{}, "ends with a dot"},
		{[]fat.File{ok(strings.Repeat("n", 256))}, fat.Options{}, "255"},
		{[]fat.File{{Path: "big", Size: 1 << 32, Write: func(io.WriterAt) error { return nil }}}, fat.Options{}, "size"},
		{[]fat.File{ok("x")}, fat.Options{Label: "TOO LONG LABEL"}, "longer than 11"},
		{[]fat.File{ok("x")}, fat.Options{Size: 1 << 20}, "needs at least"},
		{[]fat.File{ok("x")}, fat.Options{Type: 12}, "unknown type"},
		{[]fat.File{ok("x")}, fat.Options{Time: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}, "range"},
		{[]fat.File{bytesFile("x", content("x", 40<<20))}, fat.Options{Size: 34 << 20}, "the files need"},
		{[]fat.File{{Path: "x", Size: 10, Write: func(w io.WriterAt) error { _, err := w.WriteAt(make([]byte, 11), 0); return err }}}, fat.Options{}, "outside the file"},
	} {
		w := &discard{}
		_, err := fat.Write(w, tc.files, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %+v: err = %v, want %q", tc.files[0].Path, tc.o, err, tc.want)
		}
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
