// Package iso9660 writes ISO 9660 (ECMA-119) volumes: a tree of files with
// level-1 names, an El Torito boot catalog with a BIOS no-emulation entry
// (its boot information table patched in, as mkisofs -boot-info-table
// does) and an EFI entry, and, for hybrid images, a master boot record in
// the system area so the same bytes boot as a hard disk too.
//
// The writer is deterministic: every time stamp is the Unix epoch, files
// are laid out in path order, and the MBR's disk signature is derived from
// the volume's content. The same Image gives byte-identical output.
package iso9660

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strings"
)

// SectorSize is ISO 9660's logical block size.
const SectorSize = 2048

// Sectors 0-15 are the system area: ISO 9660 leaves them to the platform,
// and a hybrid image puts its MBR there.
const systemAreaSectors = 16

// Image is a volume to write.
type Image struct {
	// VolumeID is the volume label: up to 32 of A-Z, 0-9 and _.
	VolumeID string
	// Files are the regular files; directories are implied by their paths.
	Files []File
	// Boot, if set, makes the volume bootable from a CD (El Torito).
	Boot *ElTorito
	// Hybrid, if set, writes an MBR into the system area so that the
	// volume also boots as a disk, and pads it to a whole MiB.
	Hybrid *Hybrid
}

// File is one regular file of the volume.
type File struct {
	// Path is slash-separated, without a leading slash. Directory names
	// are up to 8 of A-Z, 0-9 and _; file names are NAME.EXT with up to 8
	// and 3 such characters ("KERNEL" is written "KERNEL."), as level 1
	// requires, so that every reader, isolinux's included, finds them.
	Path string
	// The content is one of: the host file Source; Write, which writes
	// Size bytes at offsets 0..Size-1 of the WriterAt it is given (in any
	// order, leaving holes that read as zeros; a FAT image, say); or Data.
	Source string
	Size   int64
	Write  func(w io.WriterAt) error
	Data   []byte
}

// ElTorito is a boot catalog.
type ElTorito struct {
	// Catalog is the path the boot catalog appears under in the tree.
	Catalog string
	// BIOS is the path (one of Files) of a no-emulation boot image for PC
	// BIOS, such as isolinux.bin, or "". Its boot information table
	// (bytes 8-63) is filled in.
	BIOS string
	// BIOSLoadSectors is how many 512-byte sectors the BIOS loads at
	// first (isolinux: 4; 0 means 4).
	BIOSLoadSectors uint16
	// EFI is the path (one of Files) of an EFI system partition image
	// (FAT), or "".
	EFI string
}

// Hybrid describes the MBR of a volume that also boots as a disk.
type Hybrid struct {
	// BIOSCode is the first 432 bytes of the MBR: boot code that loads the
	// BIOS boot image from the disk (isolinux's isohdpfx.bin). With it, the
	// boot image's 512-byte LBA is stored at byte 432 and one bootable
	// partition (type 0x17) spans the whole image, as syslinux's
	// isohybrid lays it out. Without it (an EFI-only volume), the MBR's
	// one partition, of type 0xEF, is the El Torito EFI image, which UEFI
	// firmware then finds as the disk's EFI system partition.
	BIOSCode []byte
}

// Layout says where Write put things, in 2048-byte sectors.
type Layout struct {
	// Sectors is the volume's size.
	Sectors uint32
	// Extents maps each file path to its first sector and byte size.
	Extents map[string]Extent
	// DiskID is the MBR disk signature of a hybrid volume.
	DiskID uint32
}

// Extent is a file's place in the volume.
type Extent struct {
	Sector uint32
	Size   int64
}

// Every time stamp is the Unix epoch, 1970-01-01 00:00:00 UTC, as in
// kitrun's initramfs: in directory records and in volume descriptors.
var epochRecord = [7]byte{70, 1, 1, 0, 0, 0, 0}

const epochVolume = "1970010100000000"

// node is a directory or file of the tree being laid out.
type node struct {
	name     string // ISO identifier, without ";1"
	dir      bool
	parent   *node
	children []*node
	file     *File
	size     int64  // file: content size; dir: record bytes (sector multiple)
	sector   uint32 // first sector
	number   uint16 // directory's 1-based number in the path table
	data     []byte // content already in memory (Data, patched boot image, catalog)
}

// Write writes the volume to w from offset 0 and returns its layout: the
// volume is Layout.Sectors*SectorSize bytes. w must read as zeros where
// nothing was written, as a new file does: a File's Write may leave holes.
// When writing fails (a full device), the layout is returned with the
// error: it says how much room the volume needed.
func Write(w io.WriterAt, img *Image) (*Layout, error) {
	if err := checkVolumeID(img.VolumeID); err != nil {
		return nil, err
	}
	root, files, err := buildTree(img)
	if err != nil {
		return nil, err
	}
	dirs := directories(root)
	if len(dirs) > 65535 {
		return nil, fmt.Errorf("iso9660: %d directories; a path table holds at most 65535", len(dirs))
	}
	for i, d := range dirs {
		d.number = uint16(i + 1)
	}

	// Lay out: system area, volume descriptors, path tables, directories,
	// boot catalog, files.
	next := uint32(systemAreaSectors)
	pvdSector := next
	next++
	if img.Boot != nil {
		next++ // El Torito boot record
	}
	next++ // terminator
	ptSize := pathTableSize(dirs)
	ptSectors := sectorsFor(int64(ptSize))
	lPathSector := next
	next += ptSectors
	mPathSector := next
	next += ptSectors
	for _, d := range dirs {
		d.size = int64(dirRecordsSize(d))
		d.sector = next
		next += sectorsFor(d.size)
	}
	for _, f := range files {
		if f.size == 0 {
			continue // an empty file's extent is sector 0 by convention
		}
		if f.size >= 1<<32 {
			return nil, fmt.Errorf("iso9660: %s is %d bytes; a single extent holds less than 4 GiB", f.file.Path, f.size)
		}
		f.sector = next
		if int64(next)+int64(sectorsFor(f.size)) >= 1<<32-512 {
			return nil, fmt.Errorf("iso9660: the volume would exceed 2^32 sectors at %s", f.file.Path)
		}
		next += sectorsFor(f.size)
	}
	end := next
	if img.Hybrid != nil {
		const mib = 1 << 20 / SectorSize
		end = (end + mib - 1) / mib * mib
	}

	lay := &Layout{Sectors: end, Extents: map[string]Extent{}}
	byPath := map[string]*node{}
	for _, f := range files {
		lay.Extents[f.file.Path] = Extent{Sector: f.sector, Size: f.size}
		byPath[f.file.Path] = f
	}

	// El Torito: patch the BIOS image's boot information table and fill
	// the catalog, both before anything is written.
	var catalog []byte
	if h := img.Hybrid; h != nil && h.BIOSCode != nil && img.Boot != nil && img.Boot.BIOS != "" {
		if !isolinuxHybrid(byPath[img.Boot.BIOS].data) {
			return nil, fmt.Errorf("iso9660: BIOS boot image %s has no isolinux hybrid entry point (signature at byte 0x40), so the MBR boot code could not start it", img.Boot.BIOS)
		}
	}
	if b := img.Boot; b != nil {
		if catalog, err = bootCatalog(b, byPath, pvdSector); err != nil {
			return nil, err
		}
		byPath[b.Catalog].data = catalog
	}

	sum := newContentSum()
	out := &sectorWriter{w: w, sum: sum}

	// Volume descriptors.
	out.at(pvdSector)
	out.write(primaryDescriptor(img.VolumeID, end, ptSize, lPathSector, mPathSector, root))
	if img.Boot != nil {
		out.write(bootRecord(byPath[img.Boot.Catalog].sector))
	}
	out.write(terminator())
	out.write(pathTable(dirs, binary.LittleEndian))
	out.pad()
	out.write(pathTable(dirs, binary.BigEndian))
	out.pad()
	for _, d := range dirs {
		out.write(dirRecords(d))
	}
	for _, f := range files {
		if f.size == 0 {
			continue
		}
		if out.sector() != f.sector {
			return nil, fmt.Errorf("iso9660: internal layout error at %s", f.file.Path)
		}
		switch {
		case f.data != nil:
			out.write(f.data)
		case f.file.Write != nil:
			if err := out.produce(f); err != nil {
				return lay, err
			}
		default:
			if err := out.copyFile(f.file.Source, f.size); err != nil {
				return lay, err
			}
		}
		out.pad()
	}
	if out.err != nil {
		return lay, out.err
	}
	if out.sector() < end {
		// Hybrid padding; writing the last sector sets the size.
		out.at(end - 1)
		out.write(make([]byte, SectorSize))
	}
	if out.err != nil {
		return lay, out.err
	}

	if h := img.Hybrid; h != nil {
		lay.DiskID = sum.id()
		mbr, err := hybridMBR(h, img.Boot, lay)
		if err != nil {
			return nil, err
		}
		if _, err := w.WriteAt(mbr, 0); err != nil {
			return lay, err
		}
	}
	return lay, nil
}

// buildTree checks the paths and makes the directory tree; it returns the
// root and the files in layout order (path order).
func buildTree(img *Image) (*node, []*node, error) {
	root := &node{dir: true}
	seen := map[string]bool{}
	all := append([]File(nil), img.Files...)
	if img.Boot != nil {
		if img.Boot.Catalog == "" {
			return nil, nil, errors.New("iso9660: El Torito needs a path for its boot catalog")
		}
		if img.Boot.BIOS == "" && img.Boot.EFI == "" {
			return nil, nil, errors.New("iso9660: El Torito needs a BIOS or an EFI boot image")
		}
		all = append(all, File{Path: img.Boot.Catalog, Data: make([]byte, SectorSize)})
	}
	var files []*node
	for i := range all {
		f := &all[i]
		if seen[f.Path] {
			return nil, nil, fmt.Errorf("iso9660: %s appears twice", f.Path)
		}
		seen[f.Path] = true
		parts := strings.Split(f.Path, "/")
		if len(parts) > 8 {
			return nil, nil, fmt.Errorf("iso9660: %s is nested deeper than ISO 9660's 8 levels", f.Path)
		}
		dir := root
		for _, p := range parts[:len(parts)-1] {
			if err := checkDirName(p); err != nil {
				return nil, nil, fmt.Errorf("iso9660: %s: %w", f.Path, err)
			}
			dir = dir.child(p, true)
			if !dir.dir {
				return nil, nil, fmt.Errorf("iso9660: %s: %s is a file", f.Path, p)
			}
		}
		name, err := fileIdentifier(parts[len(parts)-1])
		if err != nil {
			return nil, nil, fmt.Errorf("iso9660: %s: %w", f.Path, err)
		}
		for _, c := range dir.children {
			if c.name == name {
				return nil, nil, fmt.Errorf("iso9660: %s clashes with another entry of its directory", f.Path)
			}
		}
		n := &node{name: name, parent: dir, file: f}
		switch {
		case f.Write != nil:
			if f.Source != "" || f.Data != nil {
				return nil, nil, fmt.Errorf("iso9660: %s has more than one source of content", f.Path)
			}
			if f.Size < 0 {
				return nil, nil, fmt.Errorf("iso9660: %s has a negative size", f.Path)
			}
			n.size = f.Size
		case f.Source != "":
			st, err := os.Stat(f.Source)
			if err != nil {
				return nil, nil, fmt.Errorf("iso9660: %s: %w", f.Path, err)
			}
			if !st.Mode().IsRegular() {
				return nil, nil, fmt.Errorf("iso9660: %s: %s is not a regular file", f.Path, f.Source)
			}
			n.size = st.Size()
		default:
			n.size = int64(len(f.Data))
			n.data = f.Data
		}
		dir.children = append(dir.children, n)
		files = append(files, n)
	}
	// The BIOS boot image is read into memory: its boot information
	// table is patched.
	if b := img.Boot; b != nil {
		for _, p := range []string{b.BIOS, b.EFI} {
			if p == "" {
				continue
			}
			var n *node
			for _, f := range files {
				if f.file.Path == p {
					n = f
				}
			}
			if n == nil {
				return nil, nil, fmt.Errorf("iso9660: boot image %s is not one of the files", p)
			}
			if n.data == nil && p == b.BIOS {
				if n.file.Write != nil {
					return nil, nil, fmt.Errorf("iso9660: BIOS boot image %s must be a host file or Data: its boot information table is patched", p)
				}
				data, err := os.ReadFile(n.file.Source)
				if err != nil {
					return nil, nil, fmt.Errorf("iso9660: %w", err)
				}
				if int64(len(data)) != n.size {
					return nil, nil, fmt.Errorf("iso9660: %s changed while being read", n.file.Source)
				}
				n.data = data
			}
			if p == b.BIOS {
				// Patched in place: keep the caller's Data intact.
				n.data = append([]byte(nil), n.data...)
			}
		}
	}
	sortTree(root)
	sort.SliceStable(files, func(i, j int) bool { return files[i].file.Path < files[j].file.Path })
	return root, files, nil
}

func (d *node) child(name string, dir bool) *node {
	for _, c := range d.children {
		if c.name == name {
			return c
		}
	}
	c := &node{name: name, dir: dir, parent: d}
	d.children = append(d.children, c)
	return c
}

// sortTree orders each directory's entries as ECMA-119 9.3 asks: by name,
// then extension, each compared as if padded with spaces.
func sortTree(d *node) {
	sort.Slice(d.children, func(i, j int) bool { return isoLess(d.children[i].name, d.children[j].name) })
	for _, c := range d.children {
		if c.dir {
			sortTree(c)
		}
	}
}

func isoLess(a, b string) bool {
	an, ae, _ := strings.Cut(a, ".")
	bn, be, _ := strings.Cut(b, ".")
	if c := padCompare(an, bn); c != 0 {
		return c < 0
	}
	return padCompare(ae, be) < 0
}

func padCompare(a, b string) int {
	n := max(len(a), len(b))
	a += strings.Repeat(" ", n-len(a))
	b += strings.Repeat(" ", n-len(b))
	return strings.Compare(a, b)
}

// directories lists the tree's directories in path-table order: by
// level, then by parent's number, then by name.
func directories(root *node) []*node {
	out := []*node{root}
	for level := []*node{root}; len(level) > 0; {
		var nextLevel []*node
		for _, d := range level { // parents in number order
			for _, c := range d.children { // sorted by name
				if c.dir {
					nextLevel = append(nextLevel, c)
				}
			}
		}
		out = append(out, nextLevel...)
		level = nextLevel
	}
	return out
}

func sectorsFor(n int64) uint32 {
	return uint32((n + SectorSize - 1) / SectorSize)
}

// isDChar says whether c is one of ISO 9660's d-characters.
func isDChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func checkDChars(s string) error {
	for i := 0; i < len(s); i++ {
		if !isDChar(s[i]) {
			return fmt.Errorf("%q has %q; ISO 9660 names are made of A-Z, 0-9 and _", s, s[i])
		}
	}
	return nil
}

func checkVolumeID(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("iso9660: volume ID %q must have 1 to 32 characters", s)
	}
	if err := checkDChars(s); err != nil {
		return fmt.Errorf("iso9660: volume ID: %w", err)
	}
	return nil
}

func checkDirName(s string) error {
	if s == "" || len(s) > 8 {
		return fmt.Errorf("directory name %q must have 1 to 8 characters", s)
	}
	return checkDChars(s)
}

// fileIdentifier checks a level-1 file name and returns its identifier
// without the ";1" version: "KERNEL" becomes "KERNEL.".
func fileIdentifier(s string) (string, error) {
	name, ext, _ := strings.Cut(s, ".")
	if name == "" && ext == "" || len(name) > 8 || len(ext) > 3 {
		return "", fmt.Errorf("file name %q does not fit ISO 9660 level 1 (NAME.EXT, up to 8 and 3 characters)", s)
	}
	if err := checkDChars(name); err != nil {
		return "", err
	}
	if err := checkDChars(ext); err != nil {
		return "", err
	}
	return name + "." + ext, nil
}

// contentSum is a running CRC-32C of everything written: the hybrid
// MBR's 32-bit disk signature is derived from the volume's content.
type contentSum struct{ crc uint32 }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newContentSum() *contentSum { return &contentSum{} }

func (s *contentSum) Write(p []byte) (int, error) {
	s.crc = crc32.Update(s.crc, castagnoli, p)
	return len(p), nil
}

func (s *contentSum) id() uint32 {
	if s.crc == 0 {
		return 1 // 0 means "no signature" to some tools
	}
	return s.crc
}

// sectorWriter writes sequentially through an io.WriterAt, hashing what it
// writes, and remembers the first error.
type sectorWriter struct {
	w   io.WriterAt
	sum io.Writer
	off int64
	err error
	buf []byte
}

func (s *sectorWriter) at(sector uint32) { s.off = int64(sector) * SectorSize }

func (s *sectorWriter) sector() uint32 { return uint32(s.off / SectorSize) }

func (s *sectorWriter) write(p []byte) {
	if s.err != nil {
		return
	}
	_, s.err = s.w.WriteAt(p, s.off)
	s.sum.Write(p)
	s.off += int64(len(p))
}

// pad zero-fills to the next sector boundary.
func (s *sectorWriter) pad() {
	if r := s.off % SectorSize; r != 0 {
		s.write(make([]byte, SectorSize-r))
	}
}

// produce runs a File's Write on the file's extent. Its writes go into the
// content sum in call order, with their offsets: a deterministic producer
// gives a deterministic sum.
func (s *sectorWriter) produce(f *node) error {
	if s.err != nil {
		return s.err
	}
	ew := &extentWriter{w: s.w, sum: s.sum, base: s.off, size: f.size}
	if err := f.file.Write(ew); err != nil {
		return fmt.Errorf("iso9660: writing %s: %w", f.file.Path, err)
	}
	s.off += f.size
	return nil
}

// extentWriter is the io.WriterAt a File's Write gets: offsets 0..size-1
// of the file's extent.
type extentWriter struct {
	w          io.WriterAt
	sum        io.Writer
	base, size int64
}

func (e *extentWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > e.size {
		return 0, fmt.Errorf("write of %d bytes at %d is outside the file's %d bytes", len(p), off, e.size)
	}
	var o [8]byte
	binary.LittleEndian.PutUint64(o[:], uint64(off))
	e.sum.Write(o[:])
	e.sum.Write(p)
	return e.w.WriteAt(p, e.base+off)
}

func (s *sectorWriter) copyFile(src string, size int64) error {
	if s.err != nil {
		return s.err
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	defer f.Close()
	if s.buf == nil {
		s.buf = make([]byte, 1<<20)
	}
	var done int64
	for done < size {
		n, err := f.Read(s.buf[:min(int64(len(s.buf)), size-done)])
		if n > 0 {
			s.write(s.buf[:n])
			done += int64(n)
			if s.err != nil {
				return s.err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("iso9660: %w", err)
		}
	}
	if done != size {
		return fmt.Errorf("iso9660: %s changed size while being written (%d bytes, expected %d)", src, done, size)
	}
	return nil
}

// Both-endian fields (ECMA-119 7.2.3, 7.3.3).
func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// fill sets b to s padded with spaces (ECMA-119 a- and d-strings).
func fill(b []byte, s string) {
	n := copy(b, s)
	for i := n; i < len(b); i++ {
		b[i] = ' '
	}
}

func volumeDate(b []byte) {
	copy(b, epochVolume)
	b[16] = 0 // GMT offset
}

func primaryDescriptor(volumeID string, sectors uint32, ptSize int, lPath, mPath uint32, root *node) []byte {
	b := make([]byte, SectorSize)
	b[0] = 1
	copy(b[1:], "CD001")
	b[6] = 1
	fill(b[8:40], "")
	fill(b[40:72], volumeID)
	putBoth32(b[80:], sectors)
	putBoth16(b[120:], 1) // volume set size
	putBoth16(b[124:], 1) // volume sequence number
	putBoth16(b[128:], SectorSize)
	putBoth32(b[132:], uint32(ptSize))
	binary.LittleEndian.PutUint32(b[140:], lPath)
	binary.BigEndian.PutUint32(b[148:], mPath)
	copy(b[156:190], dirRecord(root, []byte{0}))
	fill(b[190:318], "")       // volume set
	fill(b[318:446], "")       // publisher
	fill(b[446:574], "")       // data preparer
	fill(b[574:702], "KITRUN") // application
	fill(b[702:739], "")       // copyright file
	fill(b[739:776], "")       // abstract file
	fill(b[776:813], "")       // bibliographic file
	volumeDate(b[813:])        // creation
	volumeDate(b[830:])        // modification
	copy(b[847:863], "0000000000000000")
	copy(b[864:880], "0000000000000000")
	b[881] = 1 // file structure version
	return b
}

func bootRecord(catalogSector uint32) []byte {
	b := make([]byte, SectorSize)
	b[0] = 0
	copy(b[1:], "CD001")
	b[6] = 1
	copy(b[7:], "EL TORITO SPECIFICATION")
	binary.LittleEndian.PutUint32(b[71:], catalogSector)
	return b
}

func terminator() []byte {
	b := make([]byte, SectorSize)
	b[0] = 255
	copy(b[1:], "CD001")
	b[6] = 1
	return b
}

// dirRecord is a directory record (ECMA-119 9.1) for n under the given
// identifier.
func dirRecord(n *node, ident []byte) []byte {
	l := 33 + len(ident)
	if l%2 == 1 {
		l++
	}
	b := make([]byte, l)
	b[0] = byte(l)
	putBoth32(b[2:], n.sector)
	putBoth32(b[10:], uint32(n.size))
	copy(b[18:25], epochRecord[:])
	if n.dir {
		b[25] = 2
	}
	putBoth16(b[28:], 1)
	b[32] = byte(len(ident))
	copy(b[33:], ident)
	return b
}

func identifier(n *node) []byte {
	if n.dir {
		return []byte(n.name)
	}
	return []byte(n.name + ";1")
}

// dirEntries is a directory's records: itself, its parent, its children.
func dirEntries(d *node) [][]byte {
	parent := d.parent
	if parent == nil {
		parent = d
	}
	recs := [][]byte{dirRecord(d, []byte{0}), dirRecord(parent, []byte{1})}
	for _, c := range d.children {
		recs = append(recs, dirRecord(c, identifier(c)))
	}
	return recs
}

// dirRecordsSize is the size of a directory's extent: records never cross
// a sector boundary (ECMA-119 6.8.1.1). It needs only the identifiers'
// lengths, so it can run before extents are placed.
func dirRecordsSize(d *node) int {
	var off int
	for _, r := range dirEntries(d) {
		if off%SectorSize+len(r) > SectorSize {
			off += SectorSize - off%SectorSize
		}
		off += len(r)
	}
	return int(sectorsFor(int64(off))) * SectorSize
}

func dirRecords(d *node) []byte {
	out := make([]byte, 0, d.size)
	for _, r := range dirEntries(d) {
		if len(out)%SectorSize+len(r) > SectorSize {
			out = append(out, make([]byte, SectorSize-len(out)%SectorSize)...)
		}
		out = append(out, r...)
	}
	return append(out, make([]byte, int(d.size)-len(out))...)
}

func pathIdent(d *node) []byte {
	if d.parent == nil {
		return []byte{0}
	}
	return []byte(d.name)
}

func pathTableSize(dirs []*node) int {
	n := 0
	for _, d := range dirs {
		l := 8 + len(pathIdent(d))
		n += l + l%2
	}
	return n
}

// pathTable is the L (little-endian) or M (big-endian) path table
// (ECMA-119 9.4).
func pathTable(dirs []*node, order binary.ByteOrder) []byte {
	var out []byte
	for _, d := range dirs {
		id := pathIdent(d)
		rec := make([]byte, 8+len(id)+len(id)%2)
		rec[0] = byte(len(id))
		order.PutUint32(rec[2:], d.sector)
		parent := uint16(1)
		if d.parent != nil {
			parent = d.parent.number
		}
		order.PutUint16(rec[6:], parent)
		copy(rec[8:], id)
		out = append(out, rec...)
	}
	return out
}

// El Torito (the "El Torito" Bootable CD-ROM Format Specification 1.0).
const (
	platformX86 = 0
	platformEFI = 0xEF
	bootable    = 0x88
	noEmulation = 0
)

// bootCatalog patches the BIOS image's boot information table and returns
// the catalog sector: a validation entry and a default entry for the first
// platform, then a section for the EFI image when there are both.
func bootCatalog(b *ElTorito, byPath map[string]*node, pvdSector uint32) ([]byte, error) {
	cat := make([]byte, SectorSize)
	entry := func(n *node, loadSectors uint16) []byte {
		e := make([]byte, 32)
		e[0] = bootable
		e[1] = noEmulation
		binary.LittleEndian.PutUint16(e[6:], loadSectors)
		binary.LittleEndian.PutUint32(e[8:], n.sector)
		return e
	}
	efiEntry := func(n *node) []byte {
		// The loaded size in 512-byte units; firmware (EDK2) reads the
		// whole FAT image when it fits the 16-bit field and otherwise
		// takes the partition's size from the FAT itself.
		count := (n.size + 511) / 512
		if count > 0xFFFF {
			count = 0
		}
		return entry(n, uint16(count))
	}
	validation := func(platform byte) []byte {
		v := make([]byte, 32)
		v[0] = 1
		v[1] = platform
		v[30], v[31] = 0x55, 0xAA
		var sum uint16
		for i := 0; i < 32; i += 2 {
			sum += binary.LittleEndian.Uint16(v[i:])
		}
		binary.LittleEndian.PutUint16(v[28:], -sum)
		return v
	}
	off := 0
	put := func(p []byte) { off += copy(cat[off:], p) }
	switch {
	case b.BIOS != "":
		bios := byPath[b.BIOS]
		if err := patchBootInfoTable(bios, pvdSector); err != nil {
			return nil, err
		}
		load := b.BIOSLoadSectors
		if load == 0 {
			load = 4
		}
		put(validation(platformX86))
		put(entry(bios, load))
		if b.EFI != "" {
			h := make([]byte, 32)
			h[0] = 0x91 // final section header
			h[1] = platformEFI
			binary.LittleEndian.PutUint16(h[2:], 1)
			put(h)
			put(efiEntry(byPath[b.EFI]))
		}
	default:
		put(validation(platformEFI))
		put(efiEntry(byPath[b.EFI]))
	}
	return cat, nil
}

// patchBootInfoTable fills bytes 8-63 of a no-emulation boot image the way
// mkisofs -boot-info-table does: the primary volume descriptor's sector,
// the image's sector and length, and the 32-bit sum of its little-endian
// words from byte 64 on. isolinux finds the rest of itself with them.
func patchBootInfoTable(n *node, pvdSector uint32) error {
	d := n.data
	if len(d) < 64 {
		return fmt.Errorf("iso9660: boot image %s is %d bytes, too small for a boot information table", n.file.Path, len(d))
	}
	var sum uint32
	for i := 64; i < len(d); i += 4 {
		var w [4]byte
		copy(w[:], d[i:])
		sum += binary.LittleEndian.Uint32(w[:])
	}
	binary.LittleEndian.PutUint32(d[8:], pvdSector)
	binary.LittleEndian.PutUint32(d[12:], n.sector)
	binary.LittleEndian.PutUint32(d[16:], uint32(len(d)))
	binary.LittleEndian.PutUint32(d[20:], sum)
	clear(d[24:64])
	return nil
}
