package gcptar_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/kitrun/kitrun/boot/disk/gcptar"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// TestGNUTarExtractsTheDisk checks the archive with GNU tar: it lists one
// member, disk.raw, of the disk's size, and extracts it byte for byte;
// the member is an old-GNU sparse file; two writes give the same bytes.
func TestGNUTarExtractsTheDisk(t *testing.T) {
	rawtest.RequireTool(t, "tar")
	cases := rawtest.Cases()
	if !testing.Short() {
		cases = append(cases, rawtest.BigCase())
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := c.Make(t, dir)
			size := (c.Size + gcptar.Alignment - 1) / gcptar.Alignment * gcptar.Alignment
			if err := os.Truncate(raw, size); err != nil { // no GPT in these: padding is all
				t.Fatal(err)
			}
			out := filepath.Join(dir, "gcp.tar.gz")
			rawtest.Write(t, raw, out, gcptar.Write)

			list, err := exec.Command("tar", "-tvzf", out).CombinedOutput()
			if err != nil {
				t.Fatalf("tar -tvzf: %v\n%s", err, list)
			}
			lines := strings.Split(strings.TrimSpace(string(list)), "\n")
			if f := strings.Fields(lines[0]); len(lines) != 1 || len(f) < 6 || f[len(f)-1] != "disk.raw" || f[2] != strconv.FormatInt(size, 10) {
				t.Fatalf("tar -tvzf lists:\n%s\nwant one member, disk.raw, of %d bytes", list, size)
			}
			x := filepath.Join(dir, "x")
			os.Mkdir(x, 0o755)
			if b, err := exec.Command("tar", "-xzf", out, "-C", x).CombinedOutput(); err != nil {
				t.Fatalf("tar -xzf: %v\n%s", err, b)
			}
			rawtest.SameFile(t, raw, filepath.Join(x, "disk.raw"))

			// The header is old GNU's: "ustar  \0" magic, type 'S'.
			f, _ := os.Open(out)
			defer f.Close()
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			h := make([]byte, 512)
			if _, err := io.ReadFull(zr, h); err != nil {
				t.Fatal(err)
			}
			if string(h[257:265]) != "ustar  \x00" || h[156] != 'S' {
				t.Errorf("header magic %q, type %q: not an old-GNU sparse member", h[257:265], h[156])
			}
			st, _ := f.Stat()
			t.Logf("%d bytes of disk.raw: %d bytes of tar.gz", size, st.Size())

			again := filepath.Join(dir, "again.tar.gz")
			rawtest.Write(t, raw, again, gcptar.Write)
			rawtest.SameFile(t, out, again)
		})
	}
}

func TestSizeMustBeWholeGiB(t *testing.T) {
	err := gcptar.Write(context.Background(), io.Discard, bytes.NewReader(make([]byte, 4096)), 4096)
	if err == nil || !strings.Contains(err.Error(), "whole number of GiB") {
		t.Fatalf("Write of a 4 KiB disk: %v, want an error saying GCP needs whole GiB", err)
	}
}
