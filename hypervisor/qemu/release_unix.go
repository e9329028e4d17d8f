//go:build unix

package qemu

import "golang.org/x/sys/unix"

// hostRelease is the host kernel's release: a probe's answer holds for it.
func hostRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
