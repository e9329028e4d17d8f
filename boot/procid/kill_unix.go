//go:build unix

package procid

import "golang.org/x/sys/unix"

func kill(pid int) {
	if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
		unix.Kill(-pid, unix.SIGKILL)
		return
	}
	unix.Kill(pid, unix.SIGKILL)
}
