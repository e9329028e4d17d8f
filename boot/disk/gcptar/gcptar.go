// Package gcptar writes a raw disk image in the form Google Compute
// Engine's image import takes: one file named disk.raw, whose size is a
// whole number of GiB, in a GNU-format ("oldgnu") tar archive compressed
// with gzip.
//
// disk.raw is stored as an old-GNU sparse member (what `tar --format=oldgnu
// -S`, the command Google documents, writes): only its runs of non-zero
// 64 KiB units are stored, with the map of where they go in the header, so
// a 1 GiB disk holding 30 MiB costs 30 MiB to compress, not 1 GiB.
// Headers carry fixed times and owners, and gzip no name or time: the
// same image gives the same bytes.
package gcptar

import (
	"context"
	"fmt"
	"io"
	"iter"

	"github.com/klauspost/compress/gzip"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

// Alignment is the granularity GCP requires of disk.raw's size.
const Alignment = 1 << 30

// FileName is the name GCP requires of the disk in the archive.
const FileName = "disk.raw"

const (
	block            = 512
	headerSparse     = 4  // map entries in the header itself
	extensionEntries = 21 // map entries in each extension block
	// compressionLevel: zeros are not compressed at all (they are holes),
	// the rest is mostly compressed kernel and initramfs already.
	compressionLevel = gzip.DefaultCompression
)

// Write writes the size-byte raw image read from src to w as a
// gzip-compressed oldgnu tar holding disk.raw.
func Write(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) error {
	if err := rawscan.CheckSize(size); err != nil {
		return err
	}
	if size%Alignment != 0 {
		return fmt.Errorf("GCP requires disk.raw to be a whole number of GiB; the raw image is %d bytes (grow it to %d first)", size, (size+Alignment-1)/Alignment*Alignment)
	}
	m, err := rawscan.Scan(ctx, src, size)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, compressionLevel)
	if err != nil {
		return err
	}
	out := &rawscan.Writer{W: zw}
	if err := writeHeaders(out, m); err != nil {
		return err
	}
	buf := make([]byte, 16*rawscan.Unit)
	var stored int64
	for r := range runs(m) {
		for off := r.off; off < r.off+r.len; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), r.off+r.len-off)
			if err := rawscan.ReadFull(src, buf[:n], off); err != nil {
				return err
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return err
			}
			off += n
			stored += n
		}
	}
	// Pad the data to a block, then the end-of-archive marker: two zero
	// blocks.
	if err := out.WriteZeros((block-stored%block)%block + 2*block); err != nil {
		return err
	}
	return zw.Close()
}

type run struct{ off, len int64 }

// runs yields the runs of used units, clipped to the image, in order. The
// sparse map must reach the file's end: if the file ends in a hole, a
// last empty run marks it, as GNU tar does.
func runs(m *rawscan.Map) iter.Seq[run] {
	return func(yield func(run) bool) {
		var cur run
		have := false
		for i := int64(0); i < m.Units(); i++ {
			if !m.Used(i) {
				continue
			}
			off := i * rawscan.Unit
			end := min(off+rawscan.Unit, m.Size)
			if have && cur.off+cur.len == off {
				cur.len += end - off
				continue
			}
			if have && !yield(cur) {
				return
			}
			cur, have = run{off, end - off}, true
		}
		if have && !yield(cur) {
			return
		}
		if !have || cur.off+cur.len < m.Size {
			yield(run{m.Size, 0})
		}
	}
}

// writeHeaders writes the member's header and the extension blocks that
// hold the rest of its sparse map, reading the map as it goes (one run
// ahead, to know whether another block follows).
func writeHeaders(out io.Writer, m *rawscan.Map) error {
	var stored int64
	for r := range runs(m) {
		stored += r.len
	}
	next, stop := iter.Pull(runs(m))
	defer stop()
	pending, more := next()
	take := func() (run, bool) {
		r, ok := pending, more
		if ok {
			pending, more = next()
		}
		return r, ok
	}

	h := make([]byte, block)
	copy(h[0:], FileName)
	putOctal(h[100:108], 0o644)
	putOctal(h[108:116], 0) // uid
	putOctal(h[116:124], 0) // gid
	putNumber(h[124:136], stored)
	putNumber(h[136:148], 0) // mtime: fixed
	h[156] = 'S'             // old GNU sparse file
	copy(h[257:], "ustar  \x00")
	copy(h[265:], "root")
	copy(h[297:], "root")
	putNumber(h[483:495], m.Size) // real size
	for i := 0; i < headerSparse; i++ {
		r, ok := take()
		if !ok {
			break
		}
		putEntry(h[386+24*i:], r)
	}
	if more {
		h[482] = 1
	}
	putChecksum(h)
	if _, err := out.Write(h); err != nil {
		return err
	}
	for more {
		ext := make([]byte, block)
		for i := 0; i < extensionEntries; i++ {
			r, ok := take()
			if !ok {
				break
			}
			putEntry(ext[24*i:], r)
		}
		if more {
			ext[504] = 1
		}
		if _, err := out.Write(ext); err != nil {
			return err
		}
	}
	return nil
}

func putEntry(b []byte, r run) {
	putNumber(b[0:12], r.off)
	putNumber(b[12:24], r.len)
}

// putNumber writes n in a 12-byte field: 11 octal digits and a NUL, or,
// beyond 8 GiB, GNU's base-256 form (high bit set, big-endian).
func putNumber(b []byte, n int64) {
	if n < 1<<33 {
		putOctal(b, n)
		return
	}
	clear(b)
	for i := len(b) - 1; i > 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	b[0] = 0x80
}

// putOctal writes n as len(b)-1 octal digits and a NUL.
func putOctal(b []byte, n int64) {
	s := fmt.Sprintf("%0*o", len(b)-1, n)
	copy(b, s)
	b[len(b)-1] = 0
}

// putChecksum fills the header checksum: the sum of the header's bytes
// with the checksum field as spaces, as six octal digits, NUL, space.
func putChecksum(h []byte) {
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
}
