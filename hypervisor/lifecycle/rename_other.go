//go:build !linux

package lifecycle

import (
	"io/fs"
	"os"
)

// renameNoReplace renames without replacing an existing target. There is
// no RENAME_NOREPLACE off Linux: check, then rename. The target is a VM's
// directory, which holds its state file by then: rename refuses to replace
// a non-empty directory (macOS: ENOTEMPTY; Windows: access denied), which
// closes the window between the check and the rename.
func renameNoReplace(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return fs.ErrExist
	}
	if err := os.Rename(from, to); err != nil {
		if _, serr := os.Lstat(to); serr == nil {
			return fs.ErrExist
		}
		return err
	}
	return nil
}
