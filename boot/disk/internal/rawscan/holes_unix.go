//go:build linux || darwin || freebsd

package rawscan

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// NextData returns the offset of the first byte at or after off that is
// not known to be in a hole (size if there is none): r knows if it is a
// DataFinder, the file system if it is a file (whose offset this moves;
// the writers read with ReadAt only); else off.
func NextData(r io.ReaderAt, off, size int64) int64 {
	if d, ok := r.(DataFinder); ok {
		return min(d.NextData(off), size)
	}
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
