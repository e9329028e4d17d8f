//go:build !(linux || darwin || freebsd)

package rawscan

import "io"

// NextData returns the offset of the first byte at or after off that is
// not known to be in a hole (size if there is none): r knows if it is a
// DataFinder; file systems are not asked on this system.
func NextData(r io.ReaderAt, off, size int64) int64 {
	if d, ok := r.(DataFinder); ok {
		return min(d.NextData(off), size)
	}
	return off
}
