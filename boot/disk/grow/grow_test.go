package grow_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/grow"
	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// gptDisk makes a 20 MiB GPT disk with sgdisk, with data in its first
// partition.
func gptDisk(t *testing.T, dir string) string {
	t.Helper()
	rawtest.RequireTool(t, "sgdisk")
	p := filepath.Join(dir, "gpt.raw")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 20*rawtest.MiB); err != nil {
		t.Fatal(err)
	}
	sgdisk(t, "-o", "-n", "1:2048:+4M", "-t", "1:ef00", "-n", "2:0:0", p)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(rawtest.Pattern(1, 300*rawtest.KiB, true), rawtest.MiB+4096); err != nil {
		t.Fatal(err)
	}
	return p
}

func sgdisk(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("sgdisk", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeGrown(t *testing.T, src string, newSize int64, dst string) *grow.Reader {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	g, err := grow.Grow(in, st.Size(), newSize)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(g, 0, g.Size())); err != nil {
		t.Fatal(err)
	}
	// The holes the reader reports are real: scanning it with them
	// skipped sees what scanning the written file sees.
	viaHoles, err := rawscan.Scan(context.Background(), g, g.Size())
	if err != nil {
		t.Fatal(err)
	}
	written, err := rawscan.Scan(context.Background(), out, g.Size())
	if err != nil {
		t.Fatal(err)
	}
	if viaHoles.Digest != written.Digest {
		t.Errorf("scanning the grown reader (skipping the holes it reports) and the written file differ")
	}
	return g
}

// TestGPTMovesAsSgdiskMovesIt grows a GPT disk and compares the result
// with sgdisk's own relocation of the backup (`sgdisk -e` on a padded
// copy): the same bytes, except that the old backup reads as zeros here
// (sgdisk leaves it behind).
func TestGPTMovesAsSgdiskMovesIt(t *testing.T) {
	dir := t.TempDir()
	src := gptDisk(t, dir)
	const newSize = 64 * rawtest.MiB
	ours := filepath.Join(dir, "ours.raw")
	if g := writeGrown(t, src, newSize, ours); !g.MovedGPT {
		t.Fatal("the GPT backup was not moved")
	}
	if out := sgdisk(t, "-v", ours); !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v on the grown disk:\n%s", out)
	}

	theirs := filepath.Join(dir, "sgdisk.raw")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(theirs, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(theirs, newSize); err != nil {
		t.Fatal(err)
	}
	sgdisk(t, "-e", theirs)
	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	oldBackup := int64(len(data)) - 33*512 // 32 sectors of entries, then the header
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		if int64(i) >= oldBackup && int64(i) < int64(len(data)) && a[i] == 0 {
			continue
		}
		t.Fatalf("grown disk and sgdisk -e differ at byte %d (sector %d): %#x vs %#x", i, i/512, a[i], b[i])
	}
	if p, q := strings.ReplaceAll(sgdisk(t, "-p", ours), ours, "DISK"), strings.ReplaceAll(sgdisk(t, "-p", theirs), theirs, "DISK"); p != q {
		t.Errorf("partition tables differ:\n%s\n%s", p, q)
	}
}

func TestNonGPTIsPadded(t *testing.T) {
	dir := t.TempDir()
	src := rawtest.Cases()[4].Make(t, dir) // odd size, no GPT
	ours := filepath.Join(dir, "ours.raw")
	if g := writeGrown(t, src, 8*rawtest.MiB, ours); g.MovedGPT {
		t.Fatal("moved a GPT that is not there")
	}
	padded := filepath.Join(dir, "padded.raw")
	data, _ := os.ReadFile(src)
	os.WriteFile(padded, data, 0o644)
	os.Truncate(padded, 8*rawtest.MiB)
	rawtest.SameFile(t, padded, ours)
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	src := gptDisk(t, dir)
	data, _ := os.ReadFile(src)
	damaged := append([]byte(nil), data...)
	damaged[512+40] ^= 1 // first usable sector, under the header's checksum
	for _, tc := range []struct {
		name          string
		data          []byte
		size, newSize int64
		want          string
	}{
		{"smaller", data, int64(len(data)), int64(len(data)) - 512, "cannot grow"},
		{"not whole sectors", data, int64(len(data)), int64(len(data)) + 100, "cannot grow"},
		{"damaged GPT", damaged, int64(len(data)), 2 * int64(len(data)), "checksum"},
	} {
		_, err := grow.Grow(bytes.NewReader(tc.data), tc.size, tc.newSize)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// Growing to the same size changes nothing.
	g, err := grow.Grow(bytes.NewReader(data), int64(len(data)), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := io.ReadAll(io.NewSectionReader(g, 0, g.Size()))
	if !bytes.Equal(same, data) {
		t.Error("growing to the same size changed the image")
	}
}
