//go:build !unix

package atomicfile

import "os"

// syncDir: directories cannot be synced here; the rename is atomic anyway.
func syncDir(string) error { return nil }

// processAlive: on Windows FindProcess opens the process, and fails when
// there is none.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
