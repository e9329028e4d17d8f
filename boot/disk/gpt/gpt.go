// Package gpt writes GUID partition tables (UEFI specification, chapter
// 5): a protective MBR, the primary header and entry array at the start of
// the disk and their backup at its end, with their CRC32s. Only the table
// is written: the partitions' content is the caller's, and the rest of the
// disk is left unwritten (sparse).
//
// Identifiers are reproducible: GUIDs not given are name-based (RFC 4122
// version 5) from a seed the caller derives from the disk's content.
package gpt

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

const (
	// SectorSize is the logical block size the table is written for.
	SectorSize = 512
	// Align is where partitions start: 1 MiB boundaries, which suit every
	// physical block and erase size and cloud disk in use.
	Align = 1 << 20

	entries        = 128
	entrySize      = 128
	arraySectors   = entries * entrySize / SectorSize // 32
	headerSize     = 92
	firstUsableLBA = 2 + arraySectors
)

// GUID is a GUID in its text order (as in "C12A7328-F81F-..."); Write
// stores it in the mixed-endian form the specification uses.
type GUID [16]byte

// ParseGUID reads the text form.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("bad GUID %q (want XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)", s)
	}
	if _, err := hex.Decode(g[:], []byte(h)); err != nil {
		return g, fmt.Errorf("bad GUID %q: %v", s, err)
	}
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func (g GUID) String() string {
	h := strings.ToUpper(hex.EncodeToString(g[:]))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// mixed is the on-disk form: the first three fields little-endian.
func (g GUID) mixed() [16]byte {
	var b [16]byte
	b[0], b[1], b[2], b[3] = g[3], g[2], g[1], g[0]
	b[4], b[5] = g[5], g[4]
	b[6], b[7] = g[7], g[6]
	copy(b[8:], g[8:])
	return b
}

// Partition type GUIDs.
var (
	// ESP is the EFI system partition.
	ESP = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	// BIOSBoot holds a BIOS boot loader's core on a GPT disk.
	BIOSBoot = mustGUID("21686148-6449-6E6F-744E-656564454649")
	// LinuxData is a Linux file system.
	LinuxData = mustGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
)

// namespace is kitrun's namespace for name-based GUIDs.
var namespace = mustGUID("8D5F7A3E-2C41-4B0E-9F6A-6B6974727564")

// NameGUID is the RFC 4122 version-5 GUID of name in kitrun's namespace:
// the same name always gives the same GUID.
func NameGUID(name []byte) GUID {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write(name)
	var g GUID
	copy(g[:], h.Sum(nil))
	g[6] = g[6]&0x0f | 0x50
	g[8] = g[8]&0x3f | 0x80
	return g
}

// Partition is one entry of the table.
type Partition struct {
	Type GUID
	// GUID is the partition's own; zero means one derived from the
	// table's Seed and the partition's index.
	GUID GUID
	// Name is at most 36 UTF-16 units.
	Name string
	// First and Last are the partition's first and last LBA (inclusive).
	First, Last uint64
	Attributes  uint64
}

// Table is a disk's partition table.
type Table struct {
	// Size is the disk's size in bytes, a multiple of SectorSize.
	Size int64
	// DiskGUID zero means one derived from Seed.
	DiskGUID GUID
	// Seed is what derived GUIDs are made from: a digest of the disk's
	// content, so that different disks get different GUIDs and the same
	// disk always the same.
	Seed       []byte
	Partitions []Partition
}

// Layout places partitions of the given sizes (bytes) one after another,
// each starting on an Align boundary, and returns them (First and Last set)
// with the size of the smallest disk that holds them and the backup table,
// a whole number of MiB (which Azure's fixed VHDs require).
func Layout(sizes ...int64) ([]Partition, int64) {
	parts := make([]Partition, len(sizes))
	next := int64(Align)
	for i, s := range sizes {
		sectors := (s + SectorSize - 1) / SectorSize
		parts[i].First = uint64(next / SectorSize)
		parts[i].Last = parts[i].First + uint64(max(sectors, 1)) - 1
		next = (int64(parts[i].Last+1)*SectorSize + Align - 1) / Align * Align
	}
	end := int64(Align)
	if len(parts) > 0 {
		end = int64(parts[len(parts)-1].Last+1) * SectorSize
	}
	size := (end + (1+arraySectors)*SectorSize + Align - 1) / Align * Align
	return parts, size
}

// FirstUsable and LastUsable bound the LBAs partitions may take on a disk
// of size bytes.
func FirstUsable() uint64 { return firstUsableLBA }

func LastUsable(size int64) uint64 { return uint64(size/SectorSize) - 2 - arraySectors }

// Write writes the protective MBR and both copies of the table to w, a
// disk of t.Size bytes. Nothing else is written.
func Write(w io.WriterAt, t Table) error {
	if t.Size%SectorSize != 0 || t.Size < (2*firstUsableLBA)*SectorSize {
		return fmt.Errorf("gpt: disk size %d is not a multiple of %d of at least %d bytes", t.Size, SectorSize, 2*firstUsableLBA*SectorSize)
	}
	if len(t.Partitions) > entries {
		return fmt.Errorf("gpt: %d partitions; a table holds %d", len(t.Partitions), entries)
	}
	lastLBA := uint64(t.Size/SectorSize) - 1
	lastUsable := LastUsable(t.Size)
	array := make([]byte, entries*entrySize)
	for i, p := range t.Partitions {
		if p.Type == (GUID{}) {
			return fmt.Errorf("gpt: partition %d has no type GUID", i+1)
		}
		if p.First < firstUsableLBA || p.Last > lastUsable || p.First > p.Last {
			return fmt.Errorf("gpt: partition %d spans LBA %d-%d; a disk of %d bytes has room in %d-%d", i+1, p.First, p.Last, t.Size, firstUsableLBA, lastUsable)
		}
		for j, q := range t.Partitions[:i] {
			if p.First <= q.Last && q.First <= p.Last {
				return fmt.Errorf("gpt: partitions %d and %d overlap", j+1, i+1)
			}
		}
		name := utf16.Encode([]rune(p.Name))
		if len(name) > 36 {
			return fmt.Errorf("gpt: partition name %q is longer than 36 UTF-16 units", p.Name)
		}
		id := p.GUID
		if id == (GUID{}) {
			id = NameGUID(fmt.Appendf(nil, "partition %d %x", i+1, t.Seed))
		}
		e := array[i*entrySize:]
		typ, uniq := p.Type.mixed(), id.mixed()
		copy(e[0:], typ[:])
		copy(e[16:], uniq[:])
		binary.LittleEndian.PutUint64(e[32:], p.First)
		binary.LittleEndian.PutUint64(e[40:], p.Last)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		for k, c := range name {
			binary.LittleEndian.PutUint16(e[56+2*k:], c)
		}
	}
	disk := t.DiskGUID
	if disk == (GUID{}) {
		disk = NameGUID(fmt.Appendf(nil, "disk %x", t.Seed))
	}
	arrayCRC := crc32.ChecksumIEEE(array)
	header := func(my, alternate, arrayLBA uint64) []byte {
		h := make([]byte, SectorSize)
		le := binary.LittleEndian
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000) // revision 1.0
		le.PutUint32(h[12:], headerSize)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alternate)
		le.PutUint64(h[40:], firstUsableLBA)
		le.PutUint64(h[48:], lastUsable)
		g := disk.mixed()
		copy(h[56:], g[:])
		le.PutUint64(h[72:], arrayLBA)
		le.PutUint32(h[80:], entries)
		le.PutUint32(h[84:], entrySize)
		le.PutUint32(h[88:], arrayCRC)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerSize]))
		return h
	}

	// The protective MBR: one partition of type EE over the whole disk
	// (or as much of it as 32 bits of sectors say), so that MBR-only tools
	// see the disk as in use.
	mbr := make([]byte, SectorSize)
	pe := mbr[446:]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	pe[4] = 0xee
	pe[5], pe[6], pe[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(pe[8:], 1)
	binary.LittleEndian.PutUint32(pe[12:], uint32(min(lastLBA, 0xffffffff)))
	mbr[510], mbr[511] = 0x55, 0xaa

	primary := append(append(mbr, header(1, lastLBA, 2)...), array...)
	if _, err := w.WriteAt(primary, 0); err != nil {
		return fmt.Errorf("gpt: writing the primary table: %w", err)
	}
	backupArray := lastLBA - arraySectors
	backup := append(append([]byte{}, array...), header(lastLBA, 1, backupArray)...)
	if _, err := w.WriteAt(backup, int64(backupArray)*SectorSize); err != nil {
		return fmt.Errorf("gpt: writing the backup table: %w", err)
	}
	return nil
}
