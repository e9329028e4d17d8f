//go:build unix

package rawtest

import (
	"os"
	"syscall"
)

// Allocated is the space a file occupies on disk (holes excluded), or -1
// where the system does not say.
func Allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return -1
}
