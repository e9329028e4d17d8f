package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempDir makes an empty directory beside path to build a whole directory
// in, named like Create's temporary files (".BASE.tmp-PID-START-RANDOM") so that
// SweepStale removes it when its process died. Write its files with Write,
// then rename it into place and SyncDir the parent. It is made 0700; chmod
// it before the rename if others should read it.
func TempDir(path string) (string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	sweepOnce(dir)
	tmp, err := os.MkdirTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return tmp, nil
}

// SyncDir makes the creations, renames and removals in dir durable.
func SyncDir(dir string) error {
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
