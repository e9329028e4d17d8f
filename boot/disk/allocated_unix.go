//go:build unix

package disk

import (
	"os"
	"syscall"
)

// Allocated is the space a file occupies on its device: less than its size
// when it is sparse, as disk images are.
func Allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
