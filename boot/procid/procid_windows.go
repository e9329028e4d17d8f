package procid

import "os"

// pidExists: on Windows FindProcess opens the process, and fails when there
// is none.
func pidExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
