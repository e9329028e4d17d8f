package deb

// The ar container of a .deb, read by hand: the format is a magic line and
// 60-byte text headers, and every field of a header is checked before it
// is used, so a damaged or hostile package is an error that says which
// member and which field, never a panic or an oversized read.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// arMember is one member of an ar archive. Its data are the Size bytes at
// Offset in the archive.
type arMember struct {
	Name   string
	Offset int64
	Size   int64
}

// arReader walks the members of an ar archive held in r, of size bytes.
type arReader struct {
	r     io.ReaderAt
	size  int64
	off   int64 // of the next header
	index int   // of the next member, from 1, for messages
}

func newArReader(r io.ReaderAt, size int64) (*arReader, error) {
	var magic [len(arMagic)]byte
	if size < int64(len(magic)) {
		return nil, fmt.Errorf("not a Debian package: %d bytes, too short for an ar archive", size)
	}
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, err
	}
	if string(magic[:]) != arMagic {
		return nil, fmt.Errorf("not a Debian package: it does not start with the ar archive magic %q", arMagic)
	}
	return &arReader{r: r, size: size, off: int64(len(arMagic)), index: 1}, nil
}

// next returns the next member, or io.EOF after the last one.
func (a *arReader) next() (arMember, error) {
	if a.off >= a.size {
		return arMember{}, io.EOF
	}
	if a.size-a.off < arHeaderSize {
		return arMember{}, fmt.Errorf("ar member %d: truncated header at byte %d (%d bytes left, a header is %d)",
			a.index, a.off, a.size-a.off, arHeaderSize)
	}
	var h [arHeaderSize]byte
	if _, err := a.r.ReadAt(h[:], a.off); err != nil {
		return arMember{}, fmt.Errorf("ar member %d: %w", a.index, err)
	}
	fail := func(format string, args ...any) (arMember, error) {
		return arMember{}, fmt.Errorf("ar member %d (header at byte %d): %s", a.index, a.off, fmt.Sprintf(format, args...))
	}
	if string(h[58:60]) != "`\n" {
		return fail("header does not end with the ar terminator \"`\\n\" (found %q); the archive is damaged", h[58:60])
	}
	name := strings.TrimRight(string(h[0:16]), " ")
	// GNU ar ends names with '/'; dpkg-deb does not. Debian member names
	// are plain ASCII words.
	name = strings.TrimSuffix(name, "/")
	if name == "" {
		return fail("empty member name")
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f {
			return fail("member name %q holds a control or non-ASCII byte", name)
		}
	}
	for _, f := range []struct {
		label      string
		start, end int
		base       int
	}{
		{"modification time", 16, 28, 10}, {"owner", 28, 34, 10}, {"group", 34, 40, 10}, {"mode", 40, 48, 8},
	} {
		if _, err := arNumber(h[f.start:f.end], f.base, true); err != nil {
			return fail("%s field: %v", f.label, err)
		}
	}
	size, err := arNumber(h[48:58], 10, false)
	if err != nil {
		return fail("size field: %v", err)
	}
	data := a.off + arHeaderSize
	if size > a.size-data {
		return fail("member %q claims %d bytes but only %d remain in the file; the package is truncated", name, size, a.size-data)
	}
	m := arMember{Name: name, Offset: data, Size: size}
	// Members start at even offsets; odd-sized data are followed by one
	// padding byte, which a truncated last member may lack.
	a.off = data + size + size%2
	a.index++
	return m, nil
}

// arNumber parses a header field: digits in base, left-aligned and padded
// with spaces. A blank field is 0 where blankOK.
func arNumber(field []byte, base int, blankOK bool) (int64, error) {
	s := strings.TrimRight(string(field), " ")
	if s == "" {
		if blankOK {
			return 0, nil
		}
		return 0, fmt.Errorf("blank; want a decimal number")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '0'+byte(base)-1 {
			kind := "decimal"
			if base == 8 {
				kind = "octal"
			}
			return 0, fmt.Errorf("%q is not a %s number padded with spaces", field, kind)
		}
	}
	// At most 12 digits: no overflow.
	return strconv.ParseInt(s, base, 64)
}

// section returns a reader of m's data.
func (a *arReader) section(m arMember) *io.SectionReader {
	return io.NewSectionReader(a.r, m.Offset, m.Size)
}
