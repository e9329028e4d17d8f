// Package atomicfile owns the one way kitrun writes a file that others may
// read while it is written, or that must survive a crash whole: the bytes go
// to a uniquely named temporary file in the destination's directory, which is
// synced to disk, given its mode and renamed over the destination, and then
// the directory itself is synced. A reader, or the file system after a
// power cut, sees the old file or the new one, never a part of either.
//
// Temporary files and directories are named ".BASE.tmp-PID-START-RANDOM"
// (PID-START: the writer's procid) so that SweepStale can tell the leftovers
// of a killed process from the work of a live one, even after the pid was
// reused. The first Create or TempDir in a directory sweeps it, so a
// directory kitrun writes to carries a dead process's leftovers only until
// the next write there.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kitrun/kitrun/boot/procid"
)

// Write replaces path with data, atomically and durably.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFrom(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFrom replaces path with what fill writes, atomically and durably.
// If fill fails, path is left as it was and the temporary file is removed.
// Every error, fill's included, names path ("writing PATH: ...").
func WriteFrom(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Abort()
		return fmt.Errorf("writing %s: %w", path, f.plain(err))
	}
	return f.Commit()
}

// File is a temporary file that becomes path on Commit. It is an *os.File,
// so writers that seek or write at offsets (disk images) can use it.
type File struct {
	*os.File
	path string
	perm os.FileMode
	done bool
}

// Create starts a replacement of path. The caller must Commit or Abort.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	sweepOnce(dir)
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &File{File: f, path: path, perm: perm}, nil
}

// Commit syncs the file, gives it its mode and renames it to its final
// path, then syncs the directory. On error the temporary file is removed
// and the destination is untouched.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: Commit after Commit or Abort")
	}
	f.done = true
	tmp := f.File.Name()
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, f.perm)
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", f.path, f.plain(err))
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("writing %s: syncing its directory: %w", f.path, err)
	}
	return nil
}

// plain drops the temporary file's name from an error about it, which is
// wrapped with the destination's ("writing PATH: no space left on device").
func (f *File) plain(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == f.File.Name() {
		return pe.Err
	}
	return err
}

// Abort removes the temporary file; the destination is untouched. It is a
// no-op after Commit, so `defer f.Abort()` is safe.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

func tempPrefix(base string) string {
	return "." + base + ".tmp-" + procid.Self().String() + "-"
}

var swept sync.Map // directory (as given) -> struct{}

// sweepOnce sweeps dir the first time this process writes there.
func sweepOnce(dir string) {
	if _, done := swept.LoadOrStore(filepath.Clean(dir), struct{}{}); !done {
		SweepStale(dir)
	}
}

// SweepStale removes temporary files in dir that a process left behind
// when it died before Commit or Abort (kill -9, a power cut). Files of
// processes that still run are kept. It returns the names removed.
func SweepStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		owner, ok := tempOwner(e.Name())
		if !ok || owner.Running() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err == nil {
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// TempOf says whether name (a file name, not a path) is one of this
// package's temporary files or directories, and for which final name.
func TempOf(name string) (base string, ok bool) {
	if _, ok := tempOwner(name); !ok {
		return "", false
	}
	base = name[1:strings.LastIndex(name, ".tmp-")]
	return base, base != ""
}

// tempOwner parses ".BASE.tmp-PID-START-RANDOM", and the older
// ".BASE.tmp-PID-RANDOM" (whose owner's start time is unknown).
func tempOwner(name string) (procid.ID, bool) {
	if !strings.HasPrefix(name, ".") {
		return procid.ID{}, false
	}
	i := strings.LastIndex(name, ".tmp-")
	if i < 1 {
		return procid.ID{}, false
	}
	parts := strings.Split(name[i+len(".tmp-"):], "-")
	switch len(parts) {
	case 3:
		return procid.Parse(parts[0] + "-" + parts[1])
	case 2:
		return procid.Parse(parts[0] + "-0")
	}
	return procid.ID{}, false
}
