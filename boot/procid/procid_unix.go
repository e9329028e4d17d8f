//go:build unix && !linux

package procid

import (
	"errors"

	"golang.org/x/sys/unix"
)

// pidExists: EPERM means the process exists but belongs to someone else.
func pidExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
