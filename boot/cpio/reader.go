package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Reader reads a newc archive entry by entry. It also accepts the "070702"
// variant (newc with checksums) and then verifies regular files' checksums;
// for "070701" the check field is ignored.
type Reader struct {
	r    io.Reader
	off  int64
	done bool
	err  error // sticky
}

// NewReader returns a Reader that reads an archive from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r}
}

var fieldNames = [13]string{
	"ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
	"devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check",
}

// Next returns the next entry, with its data read into Record.Data. It
// returns io.EOF after the trailer entry, and stops there: bytes after the
// trailer (padding, or further concatenated archives) are not read. Errors
// for malformed input wrap ErrFormat; input that ends early gives an error
// wrapping io.ErrUnexpectedEOF.
func (rd *Reader) Next() (Record, error) {
	if rd.err != nil {
		return Record{}, rd.err
	}
	if rd.done {
		return Record{}, io.EOF
	}
	rec, err := rd.next()
	if err != nil {
		if err != io.EOF {
			rd.err = err
		}
		return Record{}, err
	}
	return rec, nil
}

func (rd *Reader) next() (Record, error) {
	start := rd.off
	var hdr [headerLen]byte
	if err := rd.read(hdr[:], "header"); err != nil {
		return Record{}, err
	}
	m := string(hdr[:6])
	if m != magic && m != magicCRC {
		return Record{}, rd.formatErr(start, "bad magic %q (want %q)", m, magic)
	}
	var f [13]uint32
	for i := range f {
		v, ok := parseHex(hdr[6+8*i : 14+8*i])
		if !ok {
			return Record{}, rd.formatErr(start, "%s field %q is not 8 hex digits", fieldNames[i], hdr[6+8*i:14+8*i])
		}
		f[i] = v
	}
	nameSize, size, check := f[11], f[6], f[12]
	if nameSize < 1 || nameSize > maxNameSize {
		return Record{}, rd.formatErr(start, "namesize %d out of range 1..%d", nameSize, maxNameSize)
	}
	name := make([]byte, nameSize)
	if err := rd.read(name, "name"); err != nil {
		return Record{}, err
	}
	if name[nameSize-1] != 0 || bytes.IndexByte(name[:nameSize-1], 0) >= 0 {
		return Record{}, rd.formatErr(start, "name %q is not a NUL-terminated string of namesize bytes", name)
	}
	if err := rd.skipPad(); err != nil {
		return Record{}, err
	}
	r := Record{
		Name:     string(name[:nameSize-1]),
		Ino:      f[0],
		Mode:     f[1],
		UID:      f[2],
		GID:      f[3],
		NLink:    f[4],
		MTime:    int64(f[5]),
		DevMajor: f[7], DevMinor: f[8],
		RDevMajor: f[9], RDevMinor: f[10],
	}
	if r.Name == trailerName {
		rd.done = true
		return Record{}, io.EOF
	}
	if size > 0 {
		// ReadAll grows its buffer as data arrives, so a corrupt size field
		// on a short input does not allocate gigabytes up front.
		data, err := io.ReadAll(io.LimitReader(rd.r, int64(size)))
		rd.off += int64(len(data))
		if err != nil {
			return Record{}, fmt.Errorf("cpio: reading data of %q: %w", r.Name, err)
		}
		if len(data) < int(size) {
			return Record{}, fmt.Errorf("cpio: data of %q at offset %d: %d of %d bytes: %w",
				r.Name, start, len(data), size, io.ErrUnexpectedEOF)
		}
		r.Data = data
		if err := rd.skipPad(); err != nil {
			return Record{}, err
		}
	}
	if m == magicCRC && r.IsRegular() {
		var sum uint32
		for _, b := range r.Data {
			sum += uint32(b)
		}
		if sum != check {
			return Record{}, rd.formatErr(start, "checksum of %q is %08X, header says %08X", r.Name, sum, check)
		}
	}
	return r, nil
}

// read fills b, counting the offset.
func (rd *Reader) read(b []byte, what string) error {
	n, err := io.ReadFull(rd.r, b)
	rd.off += int64(n)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if what == "header" && n == 0 {
			return fmt.Errorf("cpio: archive ends at offset %d without a trailer: %w", rd.off, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("cpio: %s at offset %d cut short: %w", what, rd.off-int64(n), io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("cpio: %w", err)
}

// skipPad consumes the NULs that align the stream to 4 bytes.
func (rd *Reader) skipPad() error {
	var pad [3]byte
	p := pad[:pad4(rd.off)]
	return rd.read(p, "padding")
}

func (rd *Reader) formatErr(off int64, format string, args ...any) error {
	return fmt.Errorf("cpio: entry at offset %d: %s: %w", off, fmt.Sprintf(format, args...), ErrFormat)
}

func parseHex(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}
