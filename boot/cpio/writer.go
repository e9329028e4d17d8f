package cpio

import (
	"errors"
	"fmt"
	"io"
)

// Option configures a Writer.
type Option func(*options)

type options struct {
	block int64
}

// PadTo makes Close pad the archive with NULs to a multiple of n bytes after
// the trailer. The default is 512, like GNU cpio and gen_init_cpio; n <= 4
// pads only to the 4-byte alignment newc requires anyway.
func PadTo(n int) Option {
	return func(o *options) {
		if n < 4 {
			n = 4
		}
		o.block = int64(n)
	}
}

// Writer writes a newc archive entry by entry. It does not buffer: wrap the
// destination in a bufio.Writer when it is a file.
type Writer struct {
	w      io.Writer
	opts   options
	off    int64  // bytes written so far
	count  uint32 // entries written so far
	names  map[string]bool
	err    error // sticky
	closed bool
}

// NewWriter returns a Writer that writes an archive to w.
func NewWriter(w io.Writer, opts ...Option) *Writer {
	cw := &Writer{w: w, opts: options{block: defaultBlock}, names: map[string]bool{}}
	for _, o := range opts {
		o(&cw.opts)
	}
	return cw
}

var errClosed = errors.New("cpio: write to closed Writer")

// WriteRecord validates r and appends it to the archive. A leading "/" in the
// name is dropped. Names must otherwise be clean relative paths without ".."
// components, and unique within the archive. The Writer does not check that
// parent directories precede their children; WriteTree does.
func (w *Writer) WriteRecord(r Record) error {
	if w.closed {
		return errClosed
	}
	if w.err != nil {
		return w.err
	}
	r.Name = CleanName(r.Name)
	if err := r.validate(); err != nil {
		return err
	}
	if w.names[r.Name] {
		return fmt.Errorf("cpio: duplicate entry %q", r.Name)
	}
	if w.count == maxFileSize {
		return errors.New("cpio: too many entries for 32-bit inode numbers")
	}
	w.names[r.Name] = true
	w.count++
	if r.Ino == 0 {
		r.Ino = w.count
	}
	if r.NLink == 0 {
		r.NLink = 1
		if r.IsDir() {
			r.NLink = 2
		}
	}
	return w.write(&r)
}

// write emits one entry; r is valid.
func (w *Writer) write(r *Record) error {
	hdr := appendHeader(make([]byte, 0, headerLen+len(r.Name)+4), r)
	hdr = append(hdr, r.Name...)
	hdr = append(hdr, 0)
	hdr = append(hdr, zeros[:pad4(w.off+int64(len(hdr)))]...)
	if err := w.emit(hdr); err != nil {
		return err
	}
	if len(r.Data) > 0 {
		if err := w.emit(r.Data); err != nil {
			return err
		}
		if err := w.emit(zeros[:pad4(w.off)]); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("cpio: %w", err)
	}
	return w.err
}

// Close writes the trailer entry and the final padding. It does not close
// the underlying writer. Records cannot be written after Close.
func (w *Writer) Close() error {
	if w.closed {
		return errClosed
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	// The trailer, as gen_init_cpio writes it: all fields zero but nlink 1.
	if err := w.write(&Record{Name: trailerName, NLink: 1}); err != nil {
		return err
	}
	for rest := (w.opts.block - w.off%w.opts.block) % w.opts.block; rest > 0; {
		n := min(rest, int64(len(zeros)))
		if err := w.emit(zeros[:n]); err != nil {
			return err
		}
		rest -= n
	}
	return nil
}

// Offset returns how many bytes have been written so far.
func (w *Writer) Offset() int64 { return w.off }

var zeros [512]byte

const hexDigits = "0123456789ABCDEF"

// appendHeader appends the 110-byte header of r to b.
func appendHeader(b []byte, r *Record) []byte {
	b = append(b, magic...)
	for _, v := range [...]uint32{
		r.Ino, r.Mode, r.UID, r.GID, r.NLink, uint32(r.MTime), uint32(len(r.Data)),
		r.DevMajor, r.DevMinor, r.RDevMajor, r.RDevMinor,
		uint32(len(r.Name) + 1), 0, // namesize, check
	} {
		for shift := 28; shift >= 0; shift -= 4 {
			b = append(b, hexDigits[v>>uint(shift)&0xF])
		}
	}
	return b
}
