//go:build linux || darwin || freebsd

package rawscan

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// NextData returns the offset of the first byte at or after off that the
// file system does not know to be a hole (size if there is none), when r
// is a file; else off. It moves the file's offset (the writers read with
// ReadAt only).
func NextData(r io.ReaderAt, off, size int64) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return off
	}
	next, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO:
		return size // only a hole from off to the end
	case err != nil || next < off:
		return off // no hole information: read everything
	case next > size:
		return size
	}
	return next
}
