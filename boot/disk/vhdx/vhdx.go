// Package vhdx writes a raw disk image as a dynamic VHDX, the disk format
// of Hyper-V generation 2 machines, as Microsoft's [MS-VHDX] specification
// describes it: the file type identifier, two headers and two region
// tables (CRC-32C), an empty log, the metadata region (file parameters,
// virtual disk size, page 83 data, logical and physical sector sizes) and
// the block allocation table (BAT) with its payload blocks. Blocks of
// zeros are not stored (state "not present"); a dynamic disk without a
// parent has no sector bitmaps, only their reserved BAT entries.
//
// The layout is computed from a scan of the image first (see rawscan), so
// the file is written front to back:
//
//	0      header section: identifier, headers 1 and 2, region tables 1 and 2
//	1 MiB  log (empty; the headers' log GUID is zero)
//	2 MiB  metadata region
//	3 MiB  BAT region
//	...    payload blocks, in virtual-disk order
package vhdx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

const (
	mib = 1 << 20
	// BlockSize is the payload block size: 1 MiB, what Microsoft
	// recommends for Linux guests (the default 32 MiB wastes space on
	// file systems that scatter their metadata).
	BlockSize = 1 * mib
	// LogicalSectorSize and PhysicalSectorSize are what the guest sees,
	// as Hyper-V's defaults.
	LogicalSectorSize  = 512
	PhysicalSectorSize = 4096
	// MaxSize is the specification's limit on the virtual disk: 64 TiB.
	MaxSize = 64 << 40

	// chunkRatio is the number of payload blocks one sector bitmap block
	// describes: 2^23 sectors' worth.
	chunkRatio = (1 << 23) * LogicalSectorSize / BlockSize

	headerSectionSize = 1 * mib
	logOffset         = 1 * mib
	logLength         = 1 * mib
	metadataOffset    = 2 * mib
	metadataLength    = 1 * mib
	batOffset         = 3 * mib

	header1Offset      = 64 << 10
	header2Offset      = 128 << 10
	regionTable1Offset = 192 << 10
	regionTable2Offset = 256 << 10
	headerSize         = 4 << 10
	regionTableSize    = 64 << 10
	metadataItemsStart = 64 << 10

	payloadFullyPresent = 6
	creator             = "kitrun"
)

// Identifiers the specification fixes.
var (
	batRegion          = msGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	metadataRegion     = msGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	fileParameters     = msGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	virtualDiskSize    = msGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	page83Data         = msGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	logicalSectorSize  = msGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	physicalSectorSize = msGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// msGUID turns a GUID's text into its on-disk form: the first three
// fields little-endian, the last eight bytes as written.
func msGUID(s string) [16]byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("vhdx: bad GUID " + s)
	}
	var rfc [16]byte
	copy(rfc[:], b)
	return fromRFC(rfc)
}

// fromRFC converts an RFC 9562 (big-endian) UUID to the on-disk form.
func fromRFC(u [16]byte) [16]byte {
	g := u
	g[0], g[1], g[2], g[3] = u[3], u[2], u[1], u[0]
	g[4], g[5] = u[5], u[4]
	g[6], g[7] = u[7], u[6]
	return g
}

type layout struct {
	payloadBlocks int64
	batEntries    int64
	batLength     int64 // region length, whole MiB
}

func (l layout) dataStart() int64 { return batOffset + l.batLength }

func plan(m *rawscan.Map) layout {
	var l layout
	l.payloadBlocks = (m.Size + BlockSize - 1) / BlockSize
	// A disk without a parent keeps a sector bitmap entry after every
	// chunkRatio payload entries, except after the last chunk.
	l.batEntries = l.payloadBlocks + (l.payloadBlocks-1)/chunkRatio
	l.batLength = (l.batEntries*8 + mib - 1) / mib * mib
	return l
}

// Write writes the size-byte raw image read from src to w as a dynamic
// VHDX.
func Write(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) error {
	if size > MaxSize {
		return fmt.Errorf("raw disk image of %d bytes is larger than VHDX's 64 TiB", size)
	}
	m, err := rawscan.Scan(ctx, src, size)
	if err != nil {
		return err
	}
	l := plan(m)
	out := &rawscan.Writer{W: w}
	le := binary.LittleEndian

	// Header section.
	section := make([]byte, headerSectionSize)
	copy(section, "vhdxfile")
	for i, r := range utf16.Encode([]rune(creator)) {
		le.PutUint16(section[8+2*i:], r)
	}
	fileWrite := fromRFC(m.ID("vhdx file write guid"))
	dataWrite := fromRFC(m.ID("vhdx data write guid"))
	for i, off := range []int{header1Offset, header2Offset} {
		h := section[off : off+headerSize]
		copy(h, "head")
		le.PutUint64(h[8:], uint64(i+1)) // sequence number: the higher one is current
		copy(h[16:], fileWrite[:])
		copy(h[32:], dataWrite[:])
		// Log GUID (48..63) zero: there is no log to replay.
		le.PutUint16(h[64:], 0) // log version
		le.PutUint16(h[66:], 1) // version
		le.PutUint32(h[68:], logLength)
		le.PutUint64(h[72:], logOffset)
		le.PutUint32(h[4:], crc32.Checksum(h, castagnoli))
	}
	for _, off := range []int{regionTable1Offset, regionTable2Offset} {
		rt := section[off : off+regionTableSize]
		copy(rt, "regi")
		le.PutUint32(rt[8:], 2)
		for i, e := range []struct {
			id          [16]byte
			off, length int64
		}{
			{batRegion, batOffset, l.batLength},
			{metadataRegion, metadataOffset, metadataLength},
		} {
			ent := rt[16+32*i:]
			copy(ent, e.id[:])
			le.PutUint64(ent[16:], uint64(e.off))
			le.PutUint32(ent[24:], uint32(e.length))
			le.PutUint32(ent[28:], 1) // required
		}
		le.PutUint32(rt[4:], crc32.Checksum(rt, castagnoli))
	}
	if _, err := out.Write(section); err != nil {
		return err
	}

	// Log: empty.
	if err := out.WriteZeros(logLength); err != nil {
		return err
	}

	// Metadata region.
	if err := out.Expect(metadataOffset, "metadata region"); err != nil {
		return err
	}
	md := make([]byte, metadataLength)
	page83 := fromRFC(m.ID("vhdx page 83 data"))
	const (
		isVirtualDisk = 2
		isRequired    = 4
	)
	items := []struct {
		id    [16]byte
		flags uint32
		data  []byte
	}{
		{fileParameters, isRequired, le.AppendUint32(le.AppendUint32(nil, BlockSize), 0)}, // flags 0: dynamic, no parent
		{virtualDiskSize, isRequired | isVirtualDisk, le.AppendUint64(nil, uint64(size))},
		{page83Data, isRequired | isVirtualDisk, page83[:]},
		{logicalSectorSize, isRequired | isVirtualDisk, le.AppendUint32(nil, LogicalSectorSize)},
		{physicalSectorSize, isRequired | isVirtualDisk, le.AppendUint32(nil, PhysicalSectorSize)},
	}
	copy(md, "metadata")
	le.PutUint16(md[10:], uint16(len(items)))
	itemOff := metadataItemsStart
	for i, it := range items {
		ent := md[32+32*i:]
		copy(ent, it.id[:])
		le.PutUint32(ent[16:], uint32(itemOff))
		le.PutUint32(ent[20:], uint32(len(it.data)))
		le.PutUint32(ent[24:], it.flags)
		copy(md[itemOff:], it.data)
		itemOff += len(it.data)
	}
	if _, err := out.Write(md); err != nil {
		return err
	}

	// BAT: payload blocks with data get consecutive 1 MiB slots after it.
	if err := out.Expect(batOffset, "BAT"); err != nil {
		return err
	}
	buf := make([]byte, BlockSize)
	nextMiB := uint64(l.dataStart() / mib)
	var batOff int
	flushBAT := func() error {
		_, err := out.Write(buf[:batOff])
		batOff = 0
		return err
	}
	for j := int64(0); j < l.batEntries; j++ {
		var e uint64
		if (j+1)%(chunkRatio+1) != 0 { // else a sector bitmap entry: not present
			block := j - j/(chunkRatio+1)
			if m.UsedIn(block*BlockSize, BlockSize) {
				e = payloadFullyPresent | nextMiB<<20
				nextMiB += BlockSize / mib
			}
		}
		le.PutUint64(buf[batOff:], e)
		if batOff += 8; batOff == len(buf) {
			if err := flushBAT(); err != nil {
				return err
			}
		}
	}
	if err := flushBAT(); err != nil {
		return err
	}
	if err := out.WriteZeros(batOffset + l.batLength - out.Off); err != nil {
		return err
	}

	// Payload blocks.
	if err := out.Expect(l.dataStart(), "payload blocks"); err != nil {
		return err
	}
	for b := int64(0); b < l.payloadBlocks; b++ {
		off := b * BlockSize
		if !m.UsedIn(off, BlockSize) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(BlockSize, size-off)
		if err := rawscan.ReadFull(src, buf[:n], off); err != nil {
			return err
		}
		clear(buf[n:])
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	return out.Expect(int64(nextMiB)*mib, "end of file")
}
