// Package fat writes FAT32 and FAT16 file systems, the format of EFI
// system partitions and of El Torito EFI boot images, from a list of files,
// in one pass and without reading anything back.
//
// The layout follows Microsoft's FAT specification (fatgen103): a boot
// sector with the BIOS parameter block, for FAT32 an FSInfo sector and a
// backup boot record at sector 6, two FATs, the root directory (a cluster
// chain on FAT32, a fixed region on FAT16) and the data clusters. Every
// directory and file takes contiguous clusters, allocated depth first in
// name order, so the output depends only on the files and Options.
//
// Output is sparse: regions that are all zero (free clusters, the free tail
// of the FATs, the slack of a file's last cluster) are never written, so
// the io.WriterAt must read as zeros where nothing was written, as a new
// file or a fresh region of one does. A FAT32 volume has at least 65525
// clusters (about 33 MiB with 512-byte clusters) even for a few files;
// written this way it costs the host only the blocks that hold data.
package fat

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Type is the FAT variant.
type Type int

const (
	// FAT32 is what the UEFI specification asks of a system partition on a
	// disk. It is the default.
	FAT32 Type = 32
	// FAT16 makes small volumes (from about 2 MiB), which suits El Torito
	// boot images: UEFI reads FAT12/16/32 on removable media.
	FAT16 Type = 16
)

// File is one file of the volume.
type File struct {
	// Path is slash-separated and relative to the root, e.g.
	// "EFI/BOOT/BOOTX64.EFI". Directories on the way are made; names that
	// are not upper-case 8.3 names get long-name entries.
	Path string
	// Size is the file's length in bytes (below 4 GiB).
	Size int64
	// Write writes the file's bytes to w, whose offsets 0..Size-1 are the
	// file's. Writes outside that range fail. Bytes never written read
	// as zeros. Write may be nil for an empty file.
	Write func(w io.WriterAt) error
}

// Options shape the volume. The zero value is a smallest FAT32 volume.
type Options struct {
	Type Type
	// Label is the volume label (up to 11 characters of an 8.3 name;
	// upper-cased). "" leaves the volume unlabelled ("NO NAME").
	Label string
	// Time stamps every directory entry; the zero Time means FAT's epoch,
	// 1980-01-01 00:00:00. Times between 1980 and 2107 are valid.
	Time time.Time
	// Size is the volume's size in bytes (rounded down to a 512-byte
	// sector): it then fills it, e.g. a whole partition. 0 means the
	// smallest volume of Type that holds the files and Free bytes more.
	Size int64
	// Free is free space to leave, in bytes, when Size is 0.
	Free int64
	// HiddenSectors is the number of sectors before the volume on its
	// disk (the partition's first LBA), recorded in the boot sector.
	HiddenSectors uint32
	// VolumeID is the volume serial number. 0 means one derived from the
	// volume's content (a SHA-256 of everything written but the boot
	// sectors).
	VolumeID uint32
}

// Result says what Write made.
type Result struct {
	// Size is the volume's size in bytes: the writer's offsets
	// 0..Size-1 are the volume's.
	Size int64
	// VolumeID is the serial number written.
	VolumeID uint32
	// Digest is a SHA-256 of the volume's content (files, directories,
	// FATs): a seed for other content-derived identifiers, such as the
	// GUIDs of the disk that holds the volume.
	Digest [32]byte
}

const (
	sectorSize   = 512
	dirEntrySize = 32

	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20
	attrLongName  = 0x0f

	// Cluster-count limits that decide the FAT type (fatgen103); volumes
	// stay a margin away from them, since readers disagree on the edge.
	minFAT16Clusters = 4085
	minFAT32Clusters = 65525
	maxFAT32Clusters = 0x0ffffff5
	margin           = 16

	maxFileSize = 1<<32 - 1
)

// MinSize returns the size in bytes Write gives the volume when o.Size is
// 0: what a partition must hold, at least.
func MinSize(files []File, o Options) (int64, error) {
	o.Size = 0
	l, err := plan(files, o)
	if err != nil {
		return 0, err
	}
	return int64(l.totalSectors) * sectorSize, nil
}

// Write writes the volume holding files to w, at offsets 0..Result.Size-1.
// Calls to files' Write happen one at a time, in path order.
func Write(w io.WriterAt, files []File, o Options) (Result, error) {
	l, err := plan(files, o)
	if err != nil {
		return Result{}, err
	}
	hw := &hashWriter{w: w, h: sha256.New()}
	if err := l.writeContent(hw); err != nil {
		return Result{}, err
	}
	var res Result
	copy(res.Digest[:], hw.h.Sum(nil))
	res.VolumeID = o.VolumeID
	if res.VolumeID == 0 {
		res.VolumeID = binary.LittleEndian.Uint32(res.Digest[:4])
	}
	res.Size = int64(l.totalSectors) * sectorSize
	if err := l.writeBoot(w, res.VolumeID); err != nil {
		return Result{}, err
	}
	return res, nil
}

// node is a directory or file of the volume being planned.
type node struct {
	name     string
	short    [11]byte
	lfn      bool
	dir      bool
	parent   *node
	children []*node
	file     *File

	first     uint32 // first cluster; 0 for an empty file (and FAT16's root)
	nclusters uint32
	entries   int // directory entries a directory holds
}

// layout is a planned volume.
type layout struct {
	typ          Type
	o            Options
	entryBytes   int // bytes per FAT entry
	spc          uint32
	rsvd         uint32
	fatSectors   uint32
	rootEntries  uint32 // FAT16: entries of the fixed root directory
	totalSectors uint32
	clusters     uint32 // data clusters
	used         uint32 // clusters allocated to directories and files
	root         *node
	order        []*node // allocation order: directories, then files
	stamp        [2]uint16
}

func (l *layout) clusterSize() int64 { return int64(l.spc) * sectorSize }

func (l *layout) rootSectors() uint32 { return l.rootEntries * dirEntrySize / sectorSize }

func (l *layout) dataStart() uint32 { return l.rsvd + 2*l.fatSectors + l.rootSectors() }

func (l *layout) clusterOffset(c uint32) int64 {
	return int64(l.dataStart())*sectorSize + int64(c-2)*l.clusterSize()
}

func plan(files []File, o Options) (*layout, error) {
	if o.Type == 0 {
		o.Type = FAT32
	}
	if o.Type != FAT32 && o.Type != FAT16 {
		return nil, fmt.Errorf("fat: unknown type %d (valid: 16, 32)", o.Type)
	}
	if o.Size < 0 || o.Free < 0 {
		return nil, fmt.Errorf("fat: negative size")
	}
	if _, err := label(o.Label); err != nil {
		return nil, err
	}
	stamp, err := fatTime(o.Time)
	if err != nil {
		return nil, err
	}
	root, err := tree(files)
	if err != nil {
		return nil, err
	}
	if o.Label != "" {
		root.entries++ // the label's entry
	}
	l := &layout{typ: o.Type, o: o, root: root, stamp: stamp}
	if o.Type == FAT32 {
		l.entryBytes, l.rsvd = 4, 32
	} else {
		l.entryBytes, l.rsvd = 2, 1
		// The fixed root directory: at least the customary 512 entries.
		l.rootEntries = 512
		if n := uint32(root.entries); n > l.rootEntries {
			l.rootEntries = (n + 15) / 16 * 16
		}
	}
	// FAT32 keeps 512-byte clusters (its minimum cluster count already
	// makes it large); FAT16 doubles them until the data fits its range.
	for l.spc = 1; ; l.spc *= 2 {
		if l.spc > 64 {
			return nil, fmt.Errorf("fat: %d bytes of files do not fit a FAT%d volume", l.dataBytes(), o.Type)
		}
		if err := l.size(); err == nil {
			break
		} else if o.Type == FAT32 || !errors.Is(err, errTooManyClusters) {
			return nil, err
		}
	}
	return l, nil
}

var errTooManyClusters = errors.New("too many clusters")

// dataBytes is the space files and directories take at 512-byte clusters.
func (l *layout) dataBytes() int64 {
	var n int64
	walk(l.root, func(x *node) {
		if x.dir {
			n += int64(x.entries) * dirEntrySize
		} else {
			n += x.file.Size
		}
	})
	return n
}

// size allocates clusters at the current cluster size and sizes the FATs
// and the volume.
func (l *layout) size() error {
	cs := l.clusterSize()
	next := uint32(2)
	l.order = l.order[:0]
	alloc := func(x *node, bytes int64) {
		n := uint32((bytes + cs - 1) / cs)
		x.first, x.nclusters = 0, n
		if n > 0 {
			x.first = next
			next += n
		}
		l.order = append(l.order, x)
	}
	walk(l.root, func(x *node) {
		if x.dir && (x != l.root || l.typ == FAT32) {
			alloc(x, max(int64(x.entries)*dirEntrySize, 1))
		}
	})
	walk(l.root, func(x *node) {
		if !x.dir {
			alloc(x, x.file.Size)
		}
	})
	l.used = next - 2

	minClusters, maxClusters := uint32(minFAT32Clusters+margin), uint32(maxFAT32Clusters-margin)
	if l.typ == FAT16 {
		minClusters, maxClusters = minFAT16Clusters+margin, minFAT32Clusters-1-margin
	}
	if l.o.Size == 0 {
		free := (l.o.Free + cs - 1) / cs
		n := int64(l.used) + free
		if n > int64(maxClusters) {
			return fmt.Errorf("fat: %d clusters of %d bytes needed, FAT%d holds %d: %w", n, cs, l.typ, maxClusters, errTooManyClusters)
		}
		l.clusters = max(uint32(n), minClusters)
		l.fatSectors = uint32(((int64(l.clusters)+2)*int64(l.entryBytes) + sectorSize - 1) / sectorSize)
		total := int64(l.dataStart()) + int64(l.clusters)*int64(l.spc)
		if total > 1<<32-1 {
			return fmt.Errorf("fat: volume of %d sectors is too large", total)
		}
		l.totalSectors = uint32(total)
		return nil
	}
	sectors := l.o.Size / sectorSize
	if sectors > 1<<32-1 {
		return fmt.Errorf("fat: volume size %d is too large (at most %d bytes)", l.o.Size, int64(1<<32-1)*sectorSize)
	}
	l.totalSectors = uint32(sectors)
	// The smallest FAT that has an entry for every cluster the rest of
	// the volume holds.
	for l.fatSectors = 1; ; l.fatSectors++ {
		meta := int64(l.dataStart())
		if meta >= sectors {
			return fmt.Errorf("fat: a volume of %d bytes is too small for FAT%d", l.o.Size, l.typ)
		}
		n := (sectors - meta) / int64(l.spc)
		if (n+2)*int64(l.entryBytes) <= int64(l.fatSectors)*sectorSize {
			l.clusters = uint32(n)
			break
		}
	}
	switch {
	case l.clusters > maxClusters:
		return fmt.Errorf("fat: a volume of %d bytes has %d clusters of %d bytes, FAT%d holds %d: %w", l.o.Size, l.clusters, cs, l.typ, maxClusters, errTooManyClusters)
	case l.clusters < minClusters:
		return fmt.Errorf("fat: a volume of %d bytes has %d clusters of %d bytes, FAT%d needs at least %d", l.o.Size, l.clusters, cs, l.typ, minClusters)
	case l.clusters < l.used:
		return fmt.Errorf("fat: the files need %d bytes, a volume of %d bytes holds %d", int64(l.used)*cs, l.o.Size, int64(l.clusters)*cs)
	}
	return nil
}

// walk visits x and its descendants depth first, in name order.
func walk(x *node, f func(*node)) {
	f(x)
	for _, c := range x.children {
		walk(c, f)
	}
}

// tree builds the directory tree of files, with short names and entry
// counts.
func tree(files []File) (*node, error) {
	root := &node{dir: true}
	byPath := map[string]*node{"": root}
	// FAT compares names without case: "a" and "A" are the same file.
	fold := map[string]string{}
	sorted := make([]File, len(files))
	copy(sorted, files)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for i := range sorted {
		f := &sorted[i]
		p := strings.Trim(f.Path, "/")
		if p == "" || path.Clean(p) != p {
			return nil, fmt.Errorf("fat: bad path %q (want a clean relative path such as EFI/BOOT/BOOTX64.EFI)", f.Path)
		}
		if f.Size < 0 || f.Size > maxFileSize {
			return nil, fmt.Errorf("fat: %s: size %d (FAT files hold 0 to %d bytes)", p, f.Size, int64(maxFileSize))
		}
		if f.Size > 0 && f.Write == nil {
			return nil, fmt.Errorf("fat: %s: no Write for %d bytes", p, f.Size)
		}
		parts := strings.Split(p, "/")
		parent := root
		for k, name := range parts {
			if err := checkName(name); err != nil {
				return nil, fmt.Errorf("fat: %s: %v", p, err)
			}
			sub := strings.Join(parts[:k+1], "/")
			if prev, ok := fold[strings.ToUpper(sub)]; ok && prev != sub {
				return nil, fmt.Errorf("fat: %s and %s differ only in case; FAT cannot hold both", prev, sub)
			}
			fold[strings.ToUpper(sub)] = sub
			last := k == len(parts)-1
			x, ok := byPath[sub]
			switch {
			case ok && (last || !x.dir):
				return nil, fmt.Errorf("fat: %s given twice, or both as a file and a directory", sub)
			case !ok:
				x = &node{name: name, dir: !last, parent: parent}
				if last {
					x.file = f
				}
				byPath[sub] = x
				parent.children = append(parent.children, x)
			}
			parent = x
		}
	}
	var err error
	walk(root, func(d *node) {
		if !d.dir || err != nil {
			return
		}
		taken := map[[11]byte]bool{}
		if d != root {
			d.entries = 2 // "." and ".."
		}
		for _, c := range d.children {
			if c.short, c.lfn, err = shortName(c.name, taken); err != nil {
				return
			}
			taken[c.short] = true
			d.entries++
			if c.lfn {
				d.entries += len(lfnEntries(c.name, c.short)) / dirEntrySize
			}
		}
		if d.entries > 65536 {
			err = fmt.Errorf("fat: directory %q has %d entries; FAT allows 65536", d.name, d.entries)
		}
	})
	if err != nil {
		return nil, err
	}
	return root, nil
}

// label returns the 11-byte volume label field.
func label(s string) ([11]byte, error) {
	var b [11]byte
	copy(b[:], "NO NAME    ")
	if s == "" {
		return b, nil
	}
	up := strings.ToUpper(s)
	if len(up) > 11 {
		return b, fmt.Errorf("fat: label %q is longer than 11 characters", s)
	}
	for i := 0; i < len(up); i++ {
		if !validShortChar(up[i]) && up[i] != ' ' {
			return b, fmt.Errorf("fat: label %q holds %q; use A-Z, 0-9, space and %s", s, up[i], shortChars)
		}
	}
	copy(b[:], "           ")
	copy(b[:], up)
	return b, nil
}

// fatTime encodes t as FAT's time and date words.
func fatTime(t time.Time) ([2]uint16, error) {
	if t.IsZero() {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() < 1980 || t.Year() > 2107 {
		return [2]uint16{}, fmt.Errorf("fat: time %s is outside FAT's range (1980 to 2107)", t)
	}
	tm := uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	dt := uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	return [2]uint16{tm, dt}, nil
}

// dirEntry encodes a short directory entry.
func (l *layout) dirEntry(name [11]byte, attr byte, cluster uint32, size uint32) []byte {
	e := make([]byte, dirEntrySize)
	copy(e, name[:])
	e[11] = attr
	le := binary.LittleEndian
	tm, dt := l.stamp[0], l.stamp[1]
	le.PutUint16(e[14:], tm) // creation
	le.PutUint16(e[16:], dt)
	le.PutUint16(e[18:], dt) // last access
	le.PutUint16(e[20:], uint16(cluster>>16))
	le.PutUint16(e[22:], tm) // last write
	le.PutUint16(e[24:], dt)
	le.PutUint16(e[26:], uint16(cluster))
	le.PutUint32(e[28:], size)
	return e
}

// dirBytes encodes directory d's entries.
func (l *layout) dirBytes(d *node) []byte {
	var b []byte
	if d == l.root {
		if l.o.Label != "" {
			lb, _ := label(l.o.Label)
			b = append(b, l.dirEntry(lb, attrVolumeID, 0, 0)...)
		}
	} else {
		var dot, dotdot [11]byte
		copy(dot[:], ".          ")
		copy(dotdot[:], "..         ")
		parent := d.parent.first // the root is cluster 0 in "..", by the specification
		if d.parent == l.root {
			parent = 0
		}
		b = append(b, l.dirEntry(dot, attrDirectory, d.first, 0)...)
		b = append(b, l.dirEntry(dotdot, attrDirectory, parent, 0)...)
	}
	for _, c := range d.children {
		if c.lfn {
			b = append(b, lfnEntries(c.name, c.short)...)
		}
		if c.dir {
			b = append(b, l.dirEntry(c.short, attrDirectory, c.first, 0)...)
		} else {
			b = append(b, l.dirEntry(c.short, attrArchive, c.first, uint32(c.file.Size))...)
		}
	}
	return b
}

// writeContent writes the FATs, the directories and the files.
func (l *layout) writeContent(w io.WriterAt) error {
	// The FATs: entries 0 and 1 are reserved (media byte, clean-shutdown
	// bits), then one chain per directory and file; free entries are zero
	// and not written.
	fat := make([]byte, (2+l.used)*uint32(l.entryBytes))
	put := func(i, v uint32) {
		if l.entryBytes == 4 {
			binary.LittleEndian.PutUint32(fat[4*i:], v)
		} else {
			binary.LittleEndian.PutUint16(fat[2*i:], uint16(v))
		}
	}
	eoc := uint32(0x0fffffff)
	if l.typ == FAT16 {
		eoc = 0xffff
	}
	put(0, eoc&^0xff|0xf8)
	put(1, eoc)
	for _, x := range l.order {
		for k := uint32(0); k < x.nclusters; k++ {
			if k == x.nclusters-1 {
				put(x.first+k, eoc)
			} else {
				put(x.first+k, x.first+k+1)
			}
		}
	}
	for i := uint32(0); i < 2; i++ {
		if _, err := w.WriteAt(fat, int64(l.rsvd+i*l.fatSectors)*sectorSize); err != nil {
			return fmt.Errorf("fat: writing the FAT: %w", err)
		}
	}
	for _, x := range l.order {
		switch {
		case x.dir:
			b := l.dirBytes(x)
			// Whole clusters: a directory ends at its first zero entry.
			b = append(b, make([]byte, int64(x.nclusters)*l.clusterSize()-int64(len(b)))...)
			if _, err := w.WriteAt(b, l.clusterOffset(x.first)); err != nil {
				return fmt.Errorf("fat: writing directory %s: %w", x.name, err)
			}
		case x.file.Size > 0:
			ew := &extentWriter{w: w, off: l.clusterOffset(x.first), size: x.file.Size}
			if err := x.file.Write(ew); err != nil {
				return fmt.Errorf("fat: writing %s: %w", x.file.Path, err)
			}
		}
	}
	if l.typ == FAT16 {
		b := l.dirBytes(l.root)
		b = append(b, make([]byte, int64(l.rootSectors())*sectorSize-int64(len(b)))...)
		if _, err := w.WriteAt(b, int64(l.rsvd+2*l.fatSectors)*sectorSize); err != nil {
			return fmt.Errorf("fat: writing the root directory: %w", err)
		}
	}
	return nil
}

// writeBoot writes the boot sector, and on FAT32 the FSInfo sector and
// the backup boot record.
func (l *layout) writeBoot(w io.WriterAt, volID uint32) error {
	le := binary.LittleEndian
	bs := make([]byte, sectorSize)
	// A jump over the parameter block to code that asks the BIOS for the
	// next boot device (INT 18h): the volume is not BIOS-bootable.
	codeAt := 0x5a
	if l.typ == FAT16 {
		codeAt = 0x3e
	}
	bs[0], bs[1], bs[2] = 0xeb, byte(codeAt-2), 0x90
	bs[codeAt], bs[codeAt+1] = 0xcd, 0x18
	copy(bs[3:11], "KITRUN  ")
	le.PutUint16(bs[11:], sectorSize)
	bs[13] = byte(l.spc)
	le.PutUint16(bs[14:], uint16(l.rsvd))
	bs[16] = 2 // FATs
	le.PutUint16(bs[17:], uint16(l.rootEntries))
	if l.totalSectors < 0x10000 && l.typ == FAT16 {
		le.PutUint16(bs[19:], uint16(l.totalSectors))
	} else {
		le.PutUint32(bs[32:], l.totalSectors)
	}
	bs[21] = 0xf8 // fixed media
	le.PutUint16(bs[24:], 63)
	le.PutUint16(bs[26:], 255)
	le.PutUint32(bs[28:], l.o.HiddenSectors)
	lb, _ := label(l.o.Label)
	ext := 36 // the extended boot record: drive, signature, ID, label, type
	if l.typ == FAT32 {
		le.PutUint32(bs[36:], l.fatSectors)
		le.PutUint32(bs[44:], l.root.first)
		le.PutUint16(bs[48:], 1) // FSInfo sector
		le.PutUint16(bs[50:], 6) // backup boot record
		ext = 64
	} else {
		le.PutUint16(bs[22:], uint16(l.fatSectors))
	}
	bs[ext] = 0x80
	bs[ext+2] = 0x29
	le.PutUint32(bs[ext+3:], volID)
	copy(bs[ext+7:], lb[:])
	copy(bs[ext+18:], fmt.Sprintf("FAT%-5d", l.typ))
	bs[510], bs[511] = 0x55, 0xaa
	if l.typ == FAT16 {
		_, err := w.WriteAt(bs, 0)
		return err
	}
	fsinfo := make([]byte, sectorSize)
	le.PutUint32(fsinfo[0:], 0x41615252)
	le.PutUint32(fsinfo[484:], 0x61417272)
	le.PutUint32(fsinfo[488:], l.clusters-l.used)
	le.PutUint32(fsinfo[492:], 2+l.used)
	le.PutUint32(fsinfo[508:], 0xaa550000)
	// The third sector of the boot record carries only the signature.
	third := make([]byte, sectorSize)
	third[510], third[511] = 0x55, 0xaa
	record := append(append(bs, fsinfo...), third...)
	for _, at := range []int64{0, 6} {
		if _, err := w.WriteAt(record, at*sectorSize); err != nil {
			return fmt.Errorf("fat: writing the boot record: %w", err)
		}
	}
	return nil
}

// extentWriter gives a file its own offsets inside the volume and hashes
// what is written into the volume's digest.
type extentWriter struct {
	w         io.WriterAt
	off, size int64
}

func (e *extentWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > e.size {
		return 0, fmt.Errorf("write of %d bytes at %d is outside the file's %d bytes", len(p), off, e.size)
	}
	return e.w.WriteAt(p, e.off+off)
}

// hashWriter hashes every write (offset, length, bytes) on its way to w.
type hashWriter struct {
	w  io.WriterAt
	mu sync.Mutex
	h  hash.Hash
}

func (hw *hashWriter) WriteAt(p []byte, off int64) (int, error) {
	hw.mu.Lock()
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(off))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(p)))
	hw.h.Write(hdr[:])
	hw.h.Write(p)
	hw.mu.Unlock()
	return hw.w.WriteAt(p, off)
}
