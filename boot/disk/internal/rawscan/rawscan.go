// Package rawscan owns the one pass over a raw disk image that kitrun's
// virtual-disk writers (qcow2, VHD, VHDX, VMDK, the GCP tar) make before
// they write: which 64 KiB units of the image hold any non-zero byte, and a
// digest of the content from which the containers derive their
// identifiers. With the map known up front, each writer lays its file out
// in advance and then streams it front to back into an io.Writer, holding
// one block of data at a time whatever the disk's size (the map itself
// costs one bit per unit: 2 MiB per TiB of disk).
package rawscan

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Unit is the granularity of the map: the qcow2 cluster and VMDK grain
// size, and a divisor of every other container's block size.
const Unit = 64 << 10

// SectorSize is the sector every container counts in; a raw image is a
// whole number of them.
const SectorSize = 512

// CheckSize says whether size can be a raw disk image's size.
func CheckSize(size int64) error {
	switch {
	case size <= 0:
		return fmt.Errorf("raw disk image is empty (%d bytes); a disk holds at least one %d-byte sector", size, SectorSize)
	case size%SectorSize != 0:
		return fmt.Errorf("raw disk image size %d is not a whole number of %d-byte sectors (a truncated image?)", size, SectorSize)
	}
	return nil
}

// Map is what Scan learned about an image.
type Map struct {
	// Size is the image's size in bytes.
	Size int64
	// Digest is SHA-256 over the size, and the index and bytes of every
	// used unit: it changes if and only if the content does.
	Digest [32]byte
	used   []uint64
	nUsed  int64
}

// Units is the number of units in the image (the last may be partial).
func (m *Map) Units() int64 { return (m.Size + Unit - 1) / Unit }

// Used says whether unit i holds any non-zero byte.
func (m *Map) Used(i int64) bool {
	return i >= 0 && i < m.Units() && m.used[i/64]&(1<<(uint(i)%64)) != 0
}

// UsedUnits is the number of units holding any non-zero byte.
func (m *Map) UsedUnits() int64 { return m.nUsed }

// UsedIn says whether any unit overlapping [off, off+n) is used.
func (m *Map) UsedIn(off, n int64) bool {
	if n <= 0 {
		return false
	}
	first, last := off/Unit, (off+n-1)/Unit
	if last >= m.Units() {
		last = m.Units() - 1
	}
	for i := first; i <= last; {
		if i%64 == 0 && i+63 <= last {
			if m.used[i/64] != 0 {
				return true
			}
			i += 64
			continue
		}
		if m.Used(i) {
			return true
		}
		i++
	}
	return false
}

// ID derives a 16-byte identifier from the content and purpose (so that
// the identifiers a container needs differ from one another), shaped as
// an RFC 9562 version 8 UUID: the same content always gets the same ID.
func (m *Map) ID(purpose string) [16]byte {
	h := sha256.New()
	h.Write([]byte("kitrun disk id\x00"))
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(m.Digest[:])
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x80
	id[8] = id[8]&0x3f | 0x80
	return id
}

// Scan reads the image once.
func Scan(ctx context.Context, r io.ReaderAt, size int64) (*Map, error) {
	if err := CheckSize(size); err != nil {
		return nil, err
	}
	m := &Map{Size: size}
	m.used = make([]uint64, (m.Units()+63)/64)
	h := sha256.New()
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(size))
	h.Write(hdr[:])
	// Read a chunk of units per call: small reads cost more in system
	// calls than in copying. Holes a file system reports are skipped
	// without reading.
	const chunk = 16 * Unit
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if next := NextData(r, off, size); next > off {
			if next = next / Unit * Unit; next > off {
				off = next
				continue
			}
		}
		n := min(chunk, size-off)
		if err := ReadFull(r, buf[:n], off); err != nil {
			return nil, err
		}
		for u := int64(0); u < n; u += Unit {
			b := buf[u:min(u+Unit, n)]
			if IsZero(b) {
				continue
			}
			i := (off + u) / Unit
			m.used[i/64] |= 1 << (uint(i) % 64)
			m.nUsed++
			binary.LittleEndian.PutUint64(hdr[:], uint64(i))
			h.Write(hdr[:])
			h.Write(b)
		}
		off += n
	}
	h.Sum(m.Digest[:0])
	return m, nil
}

// ReadUnit reads unit i of an image of the given size into buf (Unit
// bytes) and returns the part of buf the image covers.
func ReadUnit(r io.ReaderAt, size, i int64, buf []byte) ([]byte, error) {
	off := i * Unit
	n := int64(Unit)
	if off+n > size {
		n = size - off
	}
	return buf[:n], ReadFull(r, buf[:n], off)
}

// ReadFull fills p from r at off; reaching the end early is an error.
func ReadFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading raw disk image at offset %d: %w (the image is shorter than its stated size?)", off+int64(n), err)
}

var zeros [Unit]byte

// IsZero says whether b holds only zero bytes.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if string(b[:n]) != string(zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// Zeros returns n (≤ Unit) zero bytes, to be written, never modified.
func Zeros(n int) []byte { return zeros[:n] }

// DataFinder is a reader that knows where its holes are.
type DataFinder interface {
	// NextData returns the first offset at or after off that may hold
	// non-zero bytes.
	NextData(off int64) int64
}

// Writer counts what goes through it, so that a writer can check that the
// layout it computed in advance is the one it writes.
type Writer struct {
	W   io.Writer
	Off int64
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.W.Write(p)
	w.Off += int64(n)
	return n, err
}

// WriteZeros writes n zero bytes.
func (w *Writer) WriteZeros(n int64) error {
	for n > 0 {
		k := min(n, Unit)
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Expect fails if the writer is not at offset off: the layout computed in
// advance and the one written disagree, a bug in the caller.
func (w *Writer) Expect(off int64, what string) error {
	if w.Off != off {
		return fmt.Errorf("internal layout error: %s at offset %d, planned at %d", what, w.Off, off)
	}
	return nil
}
