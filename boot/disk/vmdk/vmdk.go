// Package vmdk writes a raw disk image as a stream-optimized VMDK, the
// form VMware ESXi (through OVF/OVA import) and VirtualBox import, as
// VMware's "Virtual Disk Format 5.0" describes it: a monolithic sparse
// extent whose grains are compressed and each preceded by a grain marker,
// with grain tables written after their grains, the grain directory, a
// footer and the end-of-stream marker written last. Grains of zeros are
// not stored.
//
// The file is written strictly front to back, as the format intends; the
// one scan before (see rawscan) only derives the descriptor's content ID
// from the content.
package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zlib"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

const (
	sector = rawscan.SectorSize
	// grainSize is 64 KiB, in sectors: one rawscan unit.
	grainSize    = rawscan.Unit / sector
	gtesPerGT    = 512 // grain table entries: one table maps 32 MiB
	gtSectors    = gtesPerGT * 4 / sector
	descOffset   = 1  // sectors
	descSectors  = 20 // room for the descriptor
	overheadSecs = grainSize

	flagNewlineTest = 1 << 0
	flagCompressed  = 1 << 16
	flagMarkers     = 1 << 17
	compressDeflate = 1
	gdAtEnd         = ^uint64(0)

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3

	// compressionLevel trades size for speed; grains are zlib streams, as
	// VMware's readers (and QEMU's) expect.
	compressionLevel = zlib.DefaultCompression
)

// Options tune the VMDK.
type Options struct {
	// FileName is the extent's file name the embedded descriptor names:
	// the output file's own base name ("disk.vmdk" if empty).
	FileName string
	// AdapterType is the descriptor's ddb.adapterType: "ide" (the
	// default), "lsilogic", "buslogic" or "legacyESX". VMware and
	// VirtualBox take the geometry below from it.
	AdapterType string
}

// Write writes the size-byte raw image read from src to w as a
// stream-optimized VMDK.
func Write(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, opts Options) error {
	desc, err := descriptorFor(size, opts)
	if err != nil {
		return err
	}
	m, err := rawscan.Scan(ctx, src, size)
	if err != nil {
		return err
	}
	// The content ID changes whenever the content does, as VMware's does.
	id := m.ID("vmdk content id")
	cid := binary.BigEndian.Uint32(id[:4])
	if cid >= 0xfffffffe { // read as "no parent" or "all zeros" by some readers
		cid = 0xfffffffd
	}
	descText := strings.Replace(desc, "CID=\n", fmt.Sprintf("CID=%08x\n", cid), 1)

	out := &rawscan.Writer{W: w}
	capacity := uint64(size / sector)
	header := make([]byte, sector)
	putHeader(header, capacity, gdAtEnd)
	if _, err := out.Write(header); err != nil {
		return err
	}
	descArea := make([]byte, (overheadSecs-descOffset)*sector)
	copy(descArea, descText)
	if _, err := out.Write(descArea); err != nil {
		return err
	}

	grain := make([]byte, rawscan.Unit)
	var compressed bytes.Buffer
	zw, err := zlib.NewWriterLevel(&compressed, compressionLevel)
	if err != nil {
		return err
	}
	nGrains := m.Units()
	nGTs := (nGrains + gtesPerGT - 1) / gtesPerGT
	gd := make([]byte, (nGTs*4+sector-1)/sector*sector)
	gt := make([]byte, gtSectors*sector)
	for t := int64(0); t < nGTs; t++ {
		clear(gt)
		any := false
		for g := t * gtesPerGT; g < min((t+1)*gtesPerGT, nGrains); g++ {
			if !m.Used(g) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := rawscan.ReadUnit(src, size, g, grain)
			if err != nil {
				return err
			}
			// A partial last grain holds only the bytes within the
			// capacity, as VMware's own writer does.
			compressed.Reset()
			compressed.Write(make([]byte, 12)) // the grain marker, filled in below
			zw.Reset(&compressed)
			if _, err := zw.Write(b); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
			rec := compressed.Bytes()
			binary.LittleEndian.PutUint64(rec[0:], uint64(g*grainSize))
			binary.LittleEndian.PutUint32(rec[8:], uint32(len(rec)-12))
			binary.LittleEndian.PutUint32(gt[4*(g-t*gtesPerGT):], uint32(out.Off/sector))
			if _, err := out.Write(rec); err != nil {
				return err
			}
			if err := padToSector(out); err != nil {
				return err
			}
			any = true
		}
		if !any {
			continue // no grain table; its directory entry stays 0
		}
		if err := writeMarker(out, gtSectors, markerGT); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(gd[4*t:], uint32(out.Off/sector))
		if _, err := out.Write(gt); err != nil {
			return err
		}
	}
	if err := writeMarker(out, uint64(len(gd)/sector), markerGD); err != nil {
		return err
	}
	gdOffset := uint64(out.Off / sector)
	if _, err := out.Write(gd); err != nil {
		return err
	}
	if err := writeMarker(out, 1, markerFooter); err != nil {
		return err
	}
	putHeader(header, capacity, gdOffset)
	if _, err := out.Write(header); err != nil {
		return err
	}
	return writeMarker(out, 0, markerEOS)
}

func putHeader(h []byte, capacity, gdOffset uint64) {
	clear(h)
	le := binary.LittleEndian
	copy(h[0:], "KDMV")
	le.PutUint32(h[4:], 3) // version 3: compressed grains
	le.PutUint32(h[8:], flagNewlineTest|flagCompressed|flagMarkers)
	le.PutUint64(h[12:], capacity)
	le.PutUint64(h[20:], grainSize)
	le.PutUint64(h[28:], descOffset)
	le.PutUint64(h[36:], descSectors)
	le.PutUint32(h[44:], gtesPerGT)
	le.PutUint64(h[48:], 0) // no redundant grain directory in a stream
	le.PutUint64(h[56:], gdOffset)
	le.PutUint64(h[64:], overheadSecs)
	h[72] = 0                                          // cleanly closed
	h[73], h[74], h[75], h[76] = '\n', ' ', '\r', '\n' // detects newline mangling by text-mode transfers
	le.PutUint16(h[77:], compressDeflate)
}

// writeMarker writes a metadata marker: the size in sectors of what
// follows, a zero size field, the type, padded to a sector.
func writeMarker(out *rawscan.Writer, sectors uint64, typ uint32) error {
	m := make([]byte, sector)
	binary.LittleEndian.PutUint64(m[0:], sectors)
	binary.LittleEndian.PutUint32(m[12:], typ)
	_, err := out.Write(m)
	return err
}

func padToSector(out *rawscan.Writer) error {
	if r := out.Off % sector; r != 0 {
		_, err := out.Write(rawscan.Zeros(int(sector - r)))
		return err
	}
	return nil
}

// descriptorFor returns the embedded descriptor with an empty CID line
// for Write to fill in.
func descriptorFor(size int64, opts Options) (string, error) {
	if err := rawscan.CheckSize(size); err != nil {
		return "", err
	}
	name := opts.FileName
	if name == "" {
		name = "disk.vmdk"
	}
	if name != path.Base(name) || strings.ContainsAny(name, "\"\n\\") {
		return "", fmt.Errorf("VMDK extent file name %q must be a plain file name (no directories, quotes or newlines)", name)
	}
	adapter := opts.AdapterType
	if adapter == "" {
		adapter = "ide"
	}
	sectors := size / sector
	var heads, secs int64
	switch adapter {
	case "ide":
		heads, secs = 16, 63
	case "lsilogic", "buslogic", "legacyESX":
		heads, secs = 255, 63
	default:
		return "", fmt.Errorf("unknown VMDK adapter type %q; valid: ide, lsilogic, buslogic, legacyESX", adapter)
	}
	cyls := min(sectors/(heads*secs), 16383)
	if sectors > int64(^uint32(0)) {
		return "", fmt.Errorf("raw disk image of %d bytes is larger than a VMDK extent's 2 TiB", size)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n")
	fmt.Fprintf(&b, "# Extent description\nRW %d SPARSE \"%s\"\n\n", sectors, name)
	fmt.Fprintf(&b, "# The Disk Data Base\n#DDB\n\n")
	fmt.Fprintf(&b, "ddb.virtualHWVersion = \"4\"\n")
	fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\nddb.geometry.heads = \"%d\"\nddb.geometry.sectors = \"%d\"\n", cyls, heads, secs)
	fmt.Fprintf(&b, "ddb.adapterType = \"%s\"\n", adapter)
	if b.Len()+len("ffffffff") > descSectors*sector {
		return "", fmt.Errorf("internal error: VMDK descriptor longer than its %d sectors", descSectors)
	}
	return b.String(), nil
}
