package cpio

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
)

// WriteTree writes records as one complete, reproducible archive to w: the
// same set of records in any order gives byte-identical output.
//
//   - Leading slashes are dropped from names, and records are sorted by name
//     (bytewise), which puts every directory before its contents.
//   - Every parent directory that is not among records is added with mode
//     0755, uid/gid 0 and mtime 0.
//   - A name given twice is an error, unless both records are identical
//     directories (so independent sources may each ask for "etc").
//   - Inode numbers left zero are assigned in sorted order.
//
// WriteTree closes the archive (trailer and padding) but not w. The records
// slice is not modified.
func WriteTree(w io.Writer, records []Record, opts ...Option) error {
	byName := make(map[string]Record, len(records))
	for _, r := range records {
		r.Name = CleanName(r.Name)
		if err := r.validate(); err != nil {
			return err
		}
		if prev, ok := byName[r.Name]; ok {
			if prev.IsDir() && r.IsDir() && sameRecord(prev, r) {
				continue
			}
			return fmt.Errorf("cpio: %q given twice", r.Name)
		}
		byName[r.Name] = r
	}
	for name, r := range byName {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			p, ok := byName[dir]
			if !ok {
				byName[dir] = Dir(dir, 0755)
				continue
			}
			if !p.IsDir() {
				return fmt.Errorf("cpio: %q needs parent directory %q, but that is a %s", r.Name, dir, typeName(p.Mode))
			}
		}
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	cw := NewWriter(w, opts...)
	for _, name := range names {
		if err := cw.WriteRecord(byName[name]); err != nil {
			return err
		}
	}
	return cw.Close()
}

func sameRecord(a, b Record) bool {
	return a.Name == b.Name && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.NLink == b.NLink && a.MTime == b.MTime && bytes.Equal(a.Data, b.Data) &&
		a.DevMajor == b.DevMajor && a.DevMinor == b.DevMinor &&
		a.RDevMajor == b.RDevMajor && a.RDevMinor == b.RDevMinor && a.Ino == b.Ino
}

// typeName names a file type for error messages.
func typeName(mode uint32) string {
	switch mode & TypeMask {
	case TypeReg:
		return "regular file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeChar:
		return "character device"
	case TypeBlock:
		return "block device"
	case TypeFifo:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("file of mode %06o", mode)
}
