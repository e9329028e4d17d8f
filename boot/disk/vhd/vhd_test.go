package vhd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
	"github.com/kitrun/kitrun/boot/disk/vhd"
)

func write(opts vhd.Options) rawtest.WriteFunc {
	return func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) error {
		return vhd.Write(ctx, w, src, size, opts)
	}
}

// writeToFile hands Write the *os.File itself, which can seek over zeros.
func writeToFile(t *testing.T, raw, out string) {
	t.Helper()
	in, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := vhd.Write(context.Background(), f, in, st.Size(), vhd.Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestQemuImgReadsWhatWasWritten(t *testing.T) {
	cases := rawtest.Cases()
	if !testing.Short() {
		cases = append(cases, rawtest.BigCase())
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := c.Make(t, dir)
			wantSize := (c.Size + rawtest.MiB - 1) / rawtest.MiB * rawtest.MiB

			out := filepath.Join(dir, "disk.vhd")
			writeToFile(t, raw, out)
			// Without -f, qemu-img takes a fixed VHD for raw.
			info := rawtest.ImageInfo(t, "vpc", out)
			if info.VirtualSize != wantSize {
				t.Errorf("qemu-img info -f vpc: virtual size %d, want %d (raw %d rounded up to a MiB)", info.VirtualSize, wantSize, c.Size)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != wantSize+vhd.FooterSize {
				t.Errorf("file is %d bytes, want %d + the %d-byte footer", st.Size(), wantSize, vhd.FooterSize)
			}

			// The disk is the raw image followed by zeros.
			padded := filepath.Join(dir, "padded.raw")
			copyFile(t, raw, padded)
			if err := os.Truncate(padded, wantSize); err != nil {
				t.Fatal(err)
			}
			rawtest.SameAsRaw(t, "vpc", out, padded)
			if !c.Big { // libyal reads every byte: minutes for the big one
				rawtest.SameFile(t, padded, rawtest.LibyalToRaw(t, "vhd", out))
			}

			// Zeros were seeked over, not written.
			if used := rawtest.Allocated(st); used > c.SizeLimit() {
				t.Errorf("%s occupies %d bytes for %d bytes of data: zeros were written, not skipped", out, used, c.Data())
			}

			// Through a plain io.Writer (zeros written out): the same bytes.
			if c.Big {
				return // 4 GiB of zeros to write: the seeking path is the one that matters
			}
			again := filepath.Join(dir, "again.vhd")
			rawtest.Write(t, raw, again, write(vhd.Options{}))
			rawtest.SameFile(t, out, again)
		})
	}
}

// TestFooterMatchesQemuImg compares the footer with the one qemu-img
// writes for a fixed VHD: the fields that do not vary, and the geometry,
// which qemu-img computes by the specification's algorithm (it rounds the
// size up to whole cylinders first; the geometry of that size is compared).
func TestFooterMatchesQemuImg(t *testing.T) {
	for _, size := range []int64{rawtest.MiB, 3 * rawtest.MiB, 64 * rawtest.MiB, 1000 * rawtest.MiB, 33 * rawtest.GiB, 200 * rawtest.GiB} {
		p := filepath.Join(t.TempDir(), "q.vhd")
		rawtest.QemuImg(t, "create", "-q", "-f", "vpc", "-o", "subformat=fixed", p, strconv.FormatInt(size, 10))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		theirs := make([]byte, vhd.FooterSize)
		if _, err := f.ReadAt(theirs, st.Size()-vhd.FooterSize); err != nil {
			t.Fatal(err)
		}
		f.Close()
		theirSize := int64(binary.BigEndian.Uint64(theirs[48:]))
		if theirSize < size || theirSize-size > 64*255*512 {
			t.Fatalf("qemu-img made a %d-byte disk for %d", theirSize, size)
		}
		ours := vhd.Footer(theirSize, [16]byte{})
		for _, field := range []struct {
			name     string
			from, to int
		}{
			{"cookie, features, version, data offset", 0, 24},
			{"original and current size", 40, 56},
			{"geometry", 56, 60},
			{"disk type", 60, 64},
		} {
			if !bytes.Equal(ours[field.from:field.to], theirs[field.from:field.to]) {
				t.Errorf("size %d: %s: ours % x, qemu-img's % x", theirSize, field.name, ours[field.from:field.to], theirs[field.from:field.to])
			}
		}
		if vhd.Checksum(ours) != binary.BigEndian.Uint32(ours[64:]) || vhd.Checksum(theirs) != binary.BigEndian.Uint32(theirs[64:]) {
			t.Errorf("size %d: checksum disagrees with the footer", size)
		}
	}
}

func TestBadSize(t *testing.T) {
	raw := bytes.NewReader(make([]byte, 3*rawtest.MiB))
	for _, tc := range []struct {
		size int64
		want string
	}{
		{3*rawtest.MiB + 512, "not a whole number of MiB: Azure requires one"},
		{2 * rawtest.MiB, "does not fit"},
	} {
		err := vhd.Write(context.Background(), io.Discard, raw, 3*rawtest.MiB, vhd.Options{Size: tc.size})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Size %d: %v, want an error saying %q", tc.size, err, tc.want)
		}
	}
	// A larger whole-MiB size is padded.
	var out bytes.Buffer
	if err := vhd.Write(context.Background(), &out, raw, 3*rawtest.MiB, vhd.Options{Size: 5 * rawtest.MiB}); err != nil {
		t.Fatal(err)
	}
	if int64(out.Len()) != 5*rawtest.MiB+vhd.FooterSize {
		t.Errorf("5 MiB VHD is %d bytes", out.Len())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	rawtest.QemuImg(t, "convert", "-f", "raw", "-O", "raw", from, to)
}
