//go:build unix

package qemu

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair makes a connected pair; kitrun's end is non-blocking, so that
// writes to it honour deadlines.
func socketpair(what string) (host, guest *os.File, err error) {
	// macOS has no SOCK_CLOEXEC: close-on-exec is set under the fork
	// lock, as the standard library does, so no concurrent exec sees the
	// descriptors without it (an inherited copy would hide QEMU's EOF).
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("%s socketpair: %w", what, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("%s socketpair: %w", what, err)
	}
	return os.NewFile(uintptr(fds[0]), what+"-host"), os.NewFile(uintptr(fds[1]), what+"-guest"), nil
}
