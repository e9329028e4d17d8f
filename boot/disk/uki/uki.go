// Package uki makes unified kernel images: one EFI application that the
// firmware starts directly, made of systemd's EFI stub with the kernel, the
// initramfs, the kernel command line and an os-release appended as PE
// sections (.linux, .initrd, .cmdline, .osrel), which the stub finds by name
// and boots (see the Unified Kernel Image specification of the UAPI group).
//
// The stub is a PE/COFF image; the sections are added the way the PE/COFF
// specification asks: headers in the room the stub's SizeOfHeaders leaves,
// raw data at FileAlignment, virtual addresses at SectionAlignment after the
// stub's image, and SizeOfImage, SizeOfInitializedData, NumberOfSections and
// CheckSum updated. The stub's COFF symbol table, if any, is dropped (it
// would sit between the stub and the new sections; images carry none).
package uki

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Input is what a unified kernel image holds.
type Input struct {
	// Stub is the path of the EFI stub (systemd's linuxx64.efi.stub or
	// linuxaa64.efi.stub).
	Stub string
	// Kernel is the path of an EFI-stub kernel of the stub's machine: a
	// bzImage on x86_64, an Image on arm64 (gzip-compressed Images are
	// decompressed: the stub starts the kernel as a PE image).
	Kernel string
	// Initrd is the path of the initramfs.
	Initrd string
	// Cmdline is the kernel command line.
	Cmdline string
	// OSRelease is the content of the .osrel section (os-release format),
	// which boot menus show; "" leaves it out.
	OSRelease string
}

// Machine types of PE/COFF images.
const (
	MachineAMD64 = 0x8664
	MachineARM64 = 0xaa64
)

// Image is a unified kernel image, planned: Size is known before Write.
type Image struct {
	// Machine is the PE machine type of the stub and kernel.
	Machine uint16

	header   []byte // the stub up to its last section's raw data, updated
	sumField int    // offset of CheckSum in header
	sections []section
	size     int64
}

type section struct {
	name      string
	data      []byte // in memory, or
	path      string // a file
	size      int64
	rawOffset int64
}

// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
const dataSection = 0x40000040

// New plans the image: it reads the stub, checks the kernel, and lays the
// sections out.
func New(in Input) (*Image, error) {
	stub, err := os.ReadFile(in.Stub)
	if err != nil {
		return nil, fmt.Errorf("uki: EFI stub: %w", err)
	}
	p, err := parsePE(stub)
	if err != nil {
		return nil, fmt.Errorf("uki: EFI stub %s: %v", in.Stub, err)
	}
	if p.subsystem != 10 {
		return nil, fmt.Errorf("uki: %s is not an EFI application (PE subsystem %d, want 10)", in.Stub, p.subsystem)
	}
	im := &Image{Machine: p.machine}

	linux, err := kernelSection(in.Kernel, p.machine)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(in.Initrd)
	if err != nil {
		return nil, fmt.Errorf("uki: initrd: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("uki: initrd %s is not a non-empty file", in.Initrd)
	}
	var secs []section
	if in.OSRelease != "" {
		secs = append(secs, section{name: ".osrel", data: []byte(in.OSRelease)})
	}
	if in.Cmdline != "" {
		secs = append(secs, section{name: ".cmdline", data: []byte(in.Cmdline)})
	}
	// The kernel last: it is the largest, and its image may extend past
	// its file (bss), which is then the end of the UKI's image.
	secs = append(secs, section{name: ".initrd", path: in.Initrd, size: st.Size()}, linux)
	for i := range secs {
		if secs[i].data != nil {
			secs[i].size = int64(len(secs[i].data))
		}
	}

	// Room for the new section headers.
	tableEnd := p.sectionTable + 40*len(p.sections)
	room := int(p.sizeOfHeaders)
	for _, s := range p.sections {
		if s.rawSize > 0 && int(s.rawOffset) < room {
			room = int(s.rawOffset)
		}
	}
	if need := tableEnd + 40*len(secs); need > room {
		return nil, fmt.Errorf("uki: EFI stub %s has room for %d more section headers, %d needed", in.Stub, (room-tableEnd)/40, len(secs))
	}

	align := func(v, a int64) int64 { return (v + a - 1) / a * a }
	fa, sa := int64(p.fileAlignment), int64(p.sectionAlignment)
	var rawEnd, vEnd int64 = int64(p.sizeOfHeaders), int64(p.sizeOfImage)
	for _, s := range p.sections {
		rawEnd = max(rawEnd, int64(s.rawOffset)+int64(s.rawSize))
		vEnd = max(vEnd, int64(s.va)+int64(s.vsize))
	}
	hdr := make([]byte, rawEnd)
	copy(hdr, stub) // a stub shorter than its headers say is zero-padded
	le := binary.LittleEndian
	raw, va := align(rawEnd, fa), align(vEnd, sa)
	var initData int64
	for i := range secs {
		s := &secs[i]
		if s.size > 0xffffffff {
			return nil, fmt.Errorf("uki: %s of %d bytes does not fit a PE section", s.name, s.size)
		}
		rawSize := align(s.size, fa)
		h := hdr[tableEnd+40*i : tableEnd+40*(i+1)]
		clear(h) // the stub may pad its headers with anything (arm64: NOPs)
		copy(h[:8], s.name)
		le.PutUint32(h[8:], uint32(s.size)) // VirtualSize: the stub reads this many bytes
		le.PutUint32(h[12:], uint32(va))
		le.PutUint32(h[16:], uint32(rawSize))
		le.PutUint32(h[20:], uint32(raw))
		le.PutUint32(h[36:], dataSection)
		s.rawOffset = raw
		raw += rawSize
		va = align(va+s.size, sa)
		initData += rawSize
	}
	if raw > 0xffffffff || va > 0xffffffff {
		return nil, fmt.Errorf("uki: image of %d bytes is too large for PE", raw)
	}
	le.PutUint16(hdr[p.coff+2:], uint16(len(p.sections)+len(secs)))
	le.PutUint32(hdr[p.coff+8:], 0)  // PointerToSymbolTable: dropped
	le.PutUint32(hdr[p.coff+12:], 0) // NumberOfSymbols
	le.PutUint32(hdr[p.opt+8:], uint32(int64(p.sizeOfInitializedData)+initData))
	le.PutUint32(hdr[p.opt+56:], uint32(va)) // SizeOfImage
	le.PutUint32(hdr[p.opt+64:], 0)          // CheckSum, computed by Write
	// A certificate table (Authenticode signature) signed the stub, not
	// this image, and lived past its sections.
	if p.certDir > 0 {
		le.PutUint64(hdr[p.certDir:], 0)
	}
	im.header, im.sumField, im.sections, im.size = hdr, p.opt+64, secs, raw
	return im, nil
}

// kernelSection checks the kernel and returns its .linux section.
func kernelSection(path string, machine uint16) (section, error) {
	f, err := os.Open(path)
	if err != nil {
		return section{}, fmt.Errorf("uki: kernel: %w", err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return section{}, fmt.Errorf("uki: kernel %s: %w", path, err)
	}
	head = head[:n]
	s := section{name: ".linux", path: path}
	if bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		// arm64 kernels often ship as Image.gz, which firmware cannot
		// start: the stub needs the PE image inside.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return section{}, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return section{}, fmt.Errorf("uki: kernel %s: %w", path, err)
		}
		if s.data, err = io.ReadAll(io.LimitReader(zr, 1<<30)); err != nil {
			return section{}, fmt.Errorf("uki: kernel %s: decompressing: %w", path, err)
		}
		s.path = ""
		head = s.data[:min(len(s.data), 4096)]
	} else {
		st, err := f.Stat()
		if err != nil {
			return section{}, err
		}
		s.size = st.Size()
	}
	if len(head) >= 8 && string(head[4:8]) == "zimg" {
		return section{}, fmt.Errorf("uki: kernel %s is an EFI zboot image (self-decompressing); systemd-stub 252 needs the plain Image", path)
	}
	k, err := parsePE(head)
	if err != nil {
		return section{}, fmt.Errorf("uki: kernel %s is not an EFI-stub kernel (CONFIG_EFI_STUB): %v", path, err)
	}
	if k.machine != machine {
		return section{}, fmt.Errorf("uki: kernel %s is for PE machine %#x, the stub for %#x", path, k.machine, machine)
	}
	return s, nil
}

// Size is the image's size in bytes.
func (im *Image) Size() int64 { return im.size }

// Write writes the image to w at offsets 0..Size-1, reading the kernel and
// initrd once. Padding between sections is not written (w reads as zeros
// there, as a new file does).
func (im *Image) Write(w io.WriterAt) error {
	var sum checksum
	hdr := im.header
	sum.add(hdr)
	buf := make([]byte, 1<<20)
	for _, s := range im.sections {
		if s.data != nil {
			sum.add(s.data)
			if _, err := w.WriteAt(s.data, s.rawOffset); err != nil {
				return fmt.Errorf("uki: writing %s: %w", s.name, err)
			}
			continue
		}
		f, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("uki: %s: %w", s.name, err)
		}
		var off int64
		for off < s.size {
			n, err := io.ReadFull(f, buf[:min(int64(len(buf)), s.size-off)])
			if err != nil {
				f.Close()
				return fmt.Errorf("uki: reading %s (%s changed since New?): %w", s.path, s.name, err)
			}
			sum.add(buf[:n])
			if _, err := w.WriteAt(buf[:n], s.rawOffset+off); err != nil {
				f.Close()
				return fmt.Errorf("uki: writing %s: %w", s.name, err)
			}
			off += int64(n)
		}
		f.Close()
	}
	// The last section's padding ends the file: write it, so that the
	// file has its full length on any writer.
	last := im.sections[len(im.sections)-1]
	if pad := im.size - last.rawOffset - last.size; pad > 0 {
		if _, err := w.WriteAt(make([]byte, pad), last.rawOffset+last.size); err != nil {
			return fmt.Errorf("uki: writing %s: %w", last.name, err)
		}
	}
	binary.LittleEndian.PutUint32(hdr[im.sumField:], sum.final(im.size))
	if _, err := w.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("uki: writing the headers: %w", err)
	}
	binary.LittleEndian.PutUint32(hdr[im.sumField:], 0)
	return nil
}

// checksum is the PE image checksum: the 16-bit little-endian words of the
// file (the CheckSum field read as zero) added with end-around carry, plus
// the file's length. Every piece added starts at an even offset.
type checksum struct{ s uint64 }

func (c *checksum) add(b []byte) {
	s := c.s
	i := 0
	// Four 16-bit words of each 8 bytes at once, in two 32-bit lanes of
	// lo and hi, which cannot overflow within a 64 KiB block.
	for i+8 <= len(b) {
		end := min(len(b)&^7, i+1<<16)
		var lo, hi uint64
		for ; i < end; i += 8 {
			v := binary.LittleEndian.Uint64(b[i:])
			lo += v & 0x0000ffff0000ffff
			hi += v >> 16 & 0x0000ffff0000ffff
		}
		s += lo&0xffffffff + lo>>32 + hi&0xffffffff + hi>>32
	}
	for ; i+1 < len(b); i += 2 {
		s += uint64(binary.LittleEndian.Uint16(b[i:]))
	}
	if i < len(b) {
		s += uint64(b[i])
	}
	c.s = s
}

func (c *checksum) final(length int64) uint32 {
	s := c.s
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint32(s) + uint32(length)
}

// pe is what New needs of a PE/COFF image's headers.
type pe struct {
	machine                         uint16
	coff, opt, sectionTable         int
	subsystem                       uint16
	sectionAlignment, fileAlignment uint32
	sizeOfImage, sizeOfHeaders      uint32
	sizeOfInitializedData           uint32
	certDir                         int // offset of the certificate-table directory entry, 0 if none
	sections                        []peSection
}

type peSection struct {
	va, vsize, rawOffset, rawSize uint32
}

func parsePE(b []byte) (*pe, error) {
	le := binary.LittleEndian
	if len(b) < 0x40 || string(b[:2]) != "MZ" {
		return nil, errors.New("no MZ header")
	}
	coff := int(le.Uint32(b[0x3c:])) + 4
	if coff < 4 || coff+20 > len(b) || string(b[coff-4:coff]) != "PE\x00\x00" {
		return nil, errors.New("no PE header")
	}
	p := &pe{machine: le.Uint16(b[coff:]), coff: coff, opt: coff + 20}
	nsec := int(le.Uint16(b[coff+2:]))
	optSize := int(le.Uint16(b[coff+16:]))
	p.sectionTable = p.opt + optSize
	if optSize < 96 || p.sectionTable+40*nsec > len(b) {
		return nil, errors.New("truncated PE headers")
	}
	o := b[p.opt:]
	var dirs int // offset of the data directories in the optional header
	switch le.Uint16(o) {
	case 0x20b: // PE32+
		dirs = 112
	case 0x10b: // PE32
		dirs = 96
	default:
		return nil, fmt.Errorf("unknown optional header magic %#x", le.Uint16(o))
	}
	p.sizeOfInitializedData = le.Uint32(o[8:])
	p.sectionAlignment, p.fileAlignment = le.Uint32(o[32:]), le.Uint32(o[36:])
	p.sizeOfImage, p.sizeOfHeaders = le.Uint32(o[56:]), le.Uint32(o[60:])
	p.subsystem = le.Uint16(o[68:])
	if p.fileAlignment == 0 || p.sectionAlignment == 0 || p.fileAlignment&(p.fileAlignment-1) != 0 || p.sectionAlignment&(p.sectionAlignment-1) != 0 {
		return nil, fmt.Errorf("bad alignments (file %#x, section %#x)", p.fileAlignment, p.sectionAlignment)
	}
	if ndirs := int(le.Uint32(o[dirs-4:])); ndirs > 4 && dirs+8*5 <= optSize {
		p.certDir = p.opt + dirs + 8*4
	}
	for i := range nsec {
		h := b[p.sectionTable+40*i:]
		p.sections = append(p.sections, peSection{va: le.Uint32(h[12:]), vsize: le.Uint32(h[8:]), rawOffset: le.Uint32(h[20:]), rawSize: le.Uint32(h[16:])})
	}
	return p, nil
}
