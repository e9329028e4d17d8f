//go:build !unix

package runtimedir

import (
	"errors"
	"io/fs"
	"os"
)

// ensurePrivate makes dir; a user's temporary directory is private here.
func ensurePrivate(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}
