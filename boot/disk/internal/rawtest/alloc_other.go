//go:build !unix

package rawtest

import "os"

// Allocated is the space a file occupies on disk, or -1 where the system
// does not say (here).
func Allocated(fi os.FileInfo) int64 { return -1 }
