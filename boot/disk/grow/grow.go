// Package grow presents a raw disk image enlarged to a size a platform
// requires (Azure: a whole number of MiB; GCP: a whole number of GiB),
// without copying it: the added space reads as zeros.
//
// A GUID partition table keeps its backup header and partition entries in
// the disk's last sectors. When the image has a GPT whose backup is there,
// the grown image has it in its new last sectors instead: the backup moves,
// the primary header points at it (and its last usable sector follows),
// and the protective MBR covers the new size, so that the grown disk is as
// consistent as the original (`sgdisk -v`). Other images (MBR, hybrid ISO)
// are only padded.
package grow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

const sector = rawscan.SectorSize

// Reader is a grown image.
type Reader struct {
	r             io.ReaderAt
	size, newSize int64
	patches       []patch // sorted by offset, not overlapping
	// MovedGPT says whether a GPT backup was moved.
	MovedGPT bool
}

type patch struct {
	off  int64
	data []byte
}

// Grow returns the size-byte image r grown to newSize bytes.
func Grow(r io.ReaderAt, size, newSize int64) (*Reader, error) {
	if err := rawscan.CheckSize(size); err != nil {
		return nil, err
	}
	if newSize < size || newSize%sector != 0 {
		return nil, fmt.Errorf("cannot grow a %d-byte disk image to %d bytes (a smaller size, or not whole %d-byte sectors)", size, newSize, sector)
	}
	g := &Reader{r: r, size: size, newSize: newSize}
	if newSize == size || size < 2*sector {
		return g, nil
	}
	if err := g.moveGPT(); err != nil {
		return nil, err
	}
	return g, nil
}

// Size is the grown image's size.
func (g *Reader) Size() int64 { return g.newSize }

func (g *Reader) moveGPT() error {
	head := make([]byte, 2*sector)
	if err := rawscan.ReadFull(g.r, head, 0); err != nil {
		return err
	}
	mbr, primary := head[:sector], head[sector:]
	if string(primary[:8]) != "EFI PART" {
		return nil // no GPT: padding is all there is to do
	}
	le := binary.LittleEndian
	hdrSize := le.Uint32(primary[12:])
	if hdrSize < 92 || hdrSize > sector {
		return fmt.Errorf("GPT header size %d is invalid (92..%d)", hdrSize, sector)
	}
	if crc := headerCRC(primary, hdrSize); crc != le.Uint32(primary[16:]) {
		return fmt.Errorf("GPT primary header checksum is %08x, the header says %08x: a damaged image", crc, le.Uint32(primary[16:]))
	}
	oldLast := uint64(g.size/sector - 1)
	if le.Uint64(primary[24:]) != 1 || le.Uint64(primary[32:]) != oldLast {
		return nil // the backup is not in the last sector: nothing of it to move
	}
	nEntries, entrySize := uint64(le.Uint32(primary[80:])), uint64(le.Uint32(primary[84:]))
	entriesLen := nEntries * entrySize
	if entrySize < 128 || entriesLen > 1<<20 {
		return fmt.Errorf("GPT partition entry array of %d entries of %d bytes is invalid", nEntries, entrySize)
	}
	entrySectors := (entriesLen + sector - 1) / sector
	entries := make([]byte, entrySectors*sector)
	if err := rawscan.ReadFull(g.r, entries[:entriesLen], int64(le.Uint64(primary[72:]))*sector); err != nil {
		return err
	}
	if crc := crc32.ChecksumIEEE(entries[:entriesLen]); crc != le.Uint32(primary[88:]) {
		return fmt.Errorf("GPT partition entries checksum is %08x, the header says %08x: a damaged image", crc, le.Uint32(primary[88:]))
	}
	// The old backup: its header says where its entries start.
	oldBackup := make([]byte, sector)
	if err := rawscan.ReadFull(g.r, oldBackup, int64(oldLast)*sector); err != nil {
		return err
	}
	oldFirst := oldLast
	if string(oldBackup[:8]) == "EFI PART" {
		if e := le.Uint64(oldBackup[72:]); e < oldLast && e > le.Uint64(primary[48:]) {
			oldFirst = e
		}
	}

	newLast := uint64(g.newSize/sector - 1)
	newEntries := newLast - entrySectors
	newPrimary := append([]byte(nil), primary...)
	le.PutUint64(newPrimary[32:], newLast)
	le.PutUint64(newPrimary[48:], newEntries-1) // last usable sector
	le.PutUint32(newPrimary[16:], headerCRC(newPrimary, hdrSize))
	backup := append([]byte(nil), newPrimary...)
	le.PutUint64(backup[24:], newLast)
	le.PutUint64(backup[32:], 1)
	le.PutUint64(backup[72:], newEntries)
	le.PutUint32(backup[16:], headerCRC(backup, hdrSize))

	var newMBR []byte
	if string(mbr[510:512]) == "\x55\xaa" {
		for i := 0; i < 4; i++ {
			p := mbr[446+16*i : 446+16*(i+1)]
			// A protective entry covers the whole disk after sector 0
			// (capped at 32 bits); a hybrid MBR's does not, and stays.
			if p[4] == 0xee && le.Uint32(p[8:]) == 1 && le.Uint32(p[12:]) == uint32(min(oldLast, 0xffffffff)) {
				newMBR = append([]byte(nil), mbr...)
				e := newMBR[446+16*i : 446+16*(i+1)]
				// The ending CHS follows the size if it did (sgdisk's way);
				// "not representable" (kitrun's gpt writes it) stays.
				if string(e[5:8]) == string(chs(oldLast)) {
					copy(e[5:8], chs(newLast))
				}
				le.PutUint32(e[12:], uint32(min(newLast, 0xffffffff)))
			}
		}
	}
	if newMBR != nil {
		g.patches = append(g.patches, patch{0, newMBR})
	}
	g.patches = append(g.patches,
		patch{sector, newPrimary},
		patch{int64(oldFirst) * sector, make([]byte, (oldLast-oldFirst+1)*sector)}, // the old backup reads as zeros
		patch{int64(newEntries) * sector, entries},
		patch{int64(newLast) * sector, backup},
	)
	g.MovedGPT = true
	return nil
}

// chs is the cylinder-head-sector address of a sector in an MBR entry,
// with the 255-head, 63-sector geometry of disk images; past what CHS can
// address, the "too far" value.
func chs(lba uint64) []byte {
	const heads, sectors = 255, 63
	c, h, s := lba/(heads*sectors), lba/sectors%heads, lba%sectors+1
	if c > 1023 {
		return []byte{0xfe, 0xff, 0xff}
	}
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

func headerCRC(h []byte, size uint32) uint32 {
	c := append([]byte(nil), h[:size]...)
	binary.LittleEndian.PutUint32(c[16:], 0)
	return crc32.ChecksumIEEE(c)
}

// ReadAt reads the grown image.
func (g *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("grow: negative offset")
	}
	if off >= g.newSize {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.newSize-off))
	if off < g.size {
		k := int(min(int64(n), g.size-off))
		if err := rawscan.ReadFull(g.r, p[:k], off); err != nil {
			return 0, err
		}
		clear(p[k:n])
	} else {
		clear(p[:n])
	}
	for _, pt := range g.patches {
		lo, hi := max(off, pt.off), min(off+int64(n), pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// NextData returns the first offset at or after off that may hold data
// (see rawscan.DataFinder): the added space is a hole, apart from the
// moved GPT.
func (g *Reader) NextData(off int64) int64 {
	next := g.newSize
	if off < g.size {
		next = min(next, rawscan.NextData(g.r, off, g.size))
		if next == g.size { // the rest of the original is a hole
			next = g.newSize
		}
	}
	for _, pt := range g.patches {
		if end := pt.off + int64(len(pt.data)); end > off {
			next = min(next, max(pt.off, off))
		}
	}
	return next
}
