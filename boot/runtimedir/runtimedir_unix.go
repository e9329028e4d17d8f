//go:build unix

package runtimedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ensurePrivate makes dir (0700) or checks that the one there is a real
// directory of this user that nobody else can enter: in a shared /tmp,
// anyone could have made it first.
func ensurePrivate(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory (a symbolic link or a file); remove it, or set XDG_RUNTIME_DIR", dir)
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s belongs to uid %d, not to you (uid %d); remove it, or set XDG_RUNTIME_DIR", dir, st.Uid, uid)
	}
	if st.Mode&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
