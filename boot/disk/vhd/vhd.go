// Package vhd writes a raw disk image as a fixed VHD, the format Azure
// takes: the disk's bytes, padded to a whole number of MiB (Azure refuses
// any other size), followed by the 512-byte footer of Microsoft's "Virtual
// Hard Disk Image Format Specification".
//
// A fixed VHD stores every byte of the disk, zeros included. When the
// output is seekable (a file), runs of zeros are skipped by seeking rather
// than written, so a sparse input gives a sparse file.
package vhd

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

// Alignment is the granularity Azure requires of a fixed VHD's size.
const Alignment = 1 << 20

// FooterSize is the size of the footer that follows the disk's bytes.
const FooterSize = 512

const (
	// creatorApp tells readers how to size the disk. QEMU before 9.x
	// sizes a VHD by its CHS geometry (which rounds down, truncating the
	// disk) unless the creator is one it knows to trust the footer's
	// current size for; "win " (Hyper-V) is one, and it is the convention
	// of the platform this format is for.
	creatorApp     = "win "
	creatorVersion = 0x000a0000
	creatorHostOS  = "Wi2k"
	fixedDisk      = 2
	// maxGeometrySectors is the largest disk CHS can describe
	// (65535 cylinders, 16 heads, 255 sectors per track).
	maxGeometrySectors = 65535 * 16 * 255
)

// Options tune the VHD.
type Options struct {
	// Size is the virtual disk's size. Zero means the raw image's size
	// rounded up to a whole MiB; any other value must be a whole number
	// of MiB, as Azure requires, and at least the raw image's size.
	Size int64
}

// DiskSize is the virtual disk size Write gives a raw image of rawSize
// bytes with opts, or why it cannot.
func DiskSize(rawSize int64, opts Options) (int64, error) {
	if err := rawscan.CheckSize(rawSize); err != nil {
		return 0, err
	}
	if opts.Size == 0 {
		return (rawSize + Alignment - 1) / Alignment * Alignment, nil
	}
	if opts.Size%Alignment != 0 {
		return 0, fmt.Errorf("fixed VHD size %d is not a whole number of MiB: Azure requires one (%d or %d would do)",
			opts.Size, opts.Size/Alignment*Alignment, (opts.Size+Alignment-1)/Alignment*Alignment)
	}
	if opts.Size < rawSize {
		return 0, fmt.Errorf("raw disk image of %d bytes does not fit in a fixed VHD of %d bytes", rawSize, opts.Size)
	}
	return opts.Size, nil
}

// Write writes the size-byte raw image read from src to w as a fixed VHD.
// If w is also an io.Seeker, zeros are skipped by seeking.
func Write(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, opts Options) error {
	diskSize, err := DiskSize(size, opts)
	if err != nil {
		return err
	}
	m, err := rawscan.Scan(ctx, src, size)
	if err != nil {
		return err
	}
	out := &rawscan.Writer{W: w}
	seeker, _ := w.(io.Seeker)
	skip := func(n int64) error {
		if seeker == nil {
			return out.WriteZeros(n)
		}
		if _, err := seeker.Seek(n, io.SeekCurrent); err != nil {
			return err
		}
		out.Off += n
		return nil
	}

	// Runs of used units are copied with one read and one write per MiB;
	// runs of unused ones are skipped.
	const chunkUnits = Alignment / rawscan.Unit
	buf := make([]byte, Alignment)
	for i := int64(0); i < m.Units(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		j := i + 1
		for j < m.Units() && j-i < chunkUnits && m.Used(j) == m.Used(i) {
			j++
		}
		off, end := i*rawscan.Unit, min(j*rawscan.Unit, size)
		if m.Used(i) {
			b := buf[:end-off]
			if err := rawscan.ReadFull(src, b, off); err != nil {
				return err
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
		} else if err := skip(end - off); err != nil {
			return err
		}
		i = j
	}
	if err := skip(diskSize - size); err != nil {
		return err
	}
	if err := out.Expect(diskSize, "footer"); err != nil {
		return err
	}
	id := m.ID(fmt.Sprintf("vhd unique id, disk size %d", diskSize))
	_, err = out.Write(Footer(diskSize, id))
	return err
}

// Footer returns the footer of a fixed VHD of diskSize bytes.
func Footer(diskSize int64, uniqueID [16]byte) []byte {
	f := make([]byte, FooterSize)
	be := binary.BigEndian
	copy(f[0:], "conectix")
	be.PutUint32(f[8:], 2)           // features: the "reserved" bit, always set
	be.PutUint32(f[12:], 0x00010000) // file format version 1.0
	be.PutUint64(f[16:], ^uint64(0)) // data offset: none, a fixed disk
	be.PutUint32(f[24:], 0)          // timestamp: fixed for reproducibility (2000-01-01)
	copy(f[28:], creatorApp)
	be.PutUint32(f[32:], creatorVersion)
	copy(f[36:], creatorHostOS)
	be.PutUint64(f[40:], uint64(diskSize)) // original size
	be.PutUint64(f[48:], uint64(diskSize)) // current size
	c, h, s := Geometry(diskSize)
	be.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	be.PutUint32(f[60:], fixedDisk)
	copy(f[68:], uniqueID[:])
	be.PutUint32(f[64:], Checksum(f))
	return f
}

// Checksum is the one's complement of the sum of the footer's bytes,
// its checksum field excluded.
func Checksum(footer []byte) uint32 {
	var sum uint32
	for i, b := range footer {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	return ^sum
}

// Geometry is the cylinder/head/sector geometry the VHD specification's
// algorithm gives a disk of size bytes.
func Geometry(size int64) (cylinders uint16, heads, sectorsPerTrack uint8) {
	total := size / rawscan.SectorSize
	if total > maxGeometrySectors {
		total = maxGeometrySectors
	}
	var spt, h, cth int64
	if total >= 65535*16*63 {
		spt, h = 255, 16
		cth = total / spt
	} else {
		spt = 17
		cth = total / spt
		h = max((cth+1023)/1024, 4)
		if cth >= h*1024 || h > 16 {
			spt, h = 31, 16
			cth = total / spt
		}
		if cth >= h*1024 {
			spt, h = 63, 16
			cth = total / spt
		}
	}
	return uint16(cth / h), uint8(h), uint8(spt)
}
