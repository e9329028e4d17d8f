// Package cpio owns kitrun's archive format: the "newc" cpio format (magic
// "070701", the SVR4 portable format with ASCII-hex header fields) that the
// Linux kernel unpacks as an initramfs. It writes archives byte for byte
// reproducibly (WriteTree), and reads them back (Reader) for tests and
// inspection.
//
// Layout of one entry, as the kernel's init/initramfs.c parses it:
//
//	header   110 bytes: "070701" then 13 fields of 8 hex digits each
//	         (ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
//	         devminor, rdevmajor, rdevminor, namesize, check)
//	name     namesize bytes including the terminating NUL
//	padding  NULs up to a multiple of 4 bytes (header+name together)
//	data     filesize bytes: the file's contents or the symlink's target
//	padding  NULs up to a multiple of 4 bytes
//
// The archive ends with an entry named "TRAILER!!!". Writers pad the archive
// to a multiple of 512 bytes after it, as GNU cpio and the kernel's own
// gen_init_cpio do; the kernel skips NUL padding between archives but only
// needs 4-byte alignment.
//
// Names are stored relative, without a leading "/" ("etc/motd"), as the
// kernel's initramfs tools do; the kernel unpacks them relative to the root.
//
// Hard links (nlink >= 2 with a shared inode) are not supported: every entry
// is written with its own inode number, and files get nlink 1, which makes the
// kernel create each one independently.
package cpio

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// File type bits of Record.Mode, as in st_mode.
const (
	TypeMask    = 0170000
	TypeFifo    = 0010000
	TypeChar    = 0020000
	TypeDir     = 0040000
	TypeBlock   = 0060000
	TypeReg     = 0100000
	TypeSymlink = 0120000
	TypeSocket  = 0140000
)

// PermMask selects the permission bits of Record.Mode, including setuid,
// setgid and sticky.
const PermMask = 07777

const (
	magic        = "070701"
	magicCRC     = "070702"
	headerLen    = 110
	trailerName  = "TRAILER!!!"
	maxNameSize  = 4096 // PATH_MAX, including the NUL; the kernel's limit
	maxFileSize  = 1<<32 - 1
	defaultBlock = 512
)

// ErrFormat is wrapped by every error the Reader returns for a malformed
// archive (as opposed to a truncated one, which wraps io.ErrUnexpectedEOF).
var ErrFormat = errors.New("malformed cpio archive")

// Record is one archive entry.
type Record struct {
	// Name is the path inside the archive, without a leading "/".
	Name string
	// Mode is the full st_mode: one of the Type constants plus permission
	// bits.
	Mode uint32
	UID  uint32
	GID  uint32
	// NLink is the link count. Zero means the conventional value: 2 for
	// directories, 1 for everything else.
	NLink uint32
	// MTime is the modification time in seconds since the Unix epoch; it must
	// fit in 32 unsigned bits.
	MTime int64
	// Data is the file's contents, or the symlink's target. It must be empty
	// for directories and device nodes.
	Data []byte
	// DevMajor and DevMinor are the device the entry lived on; kitrun leaves
	// them 0.
	DevMajor, DevMinor uint32
	// RDevMajor and RDevMinor are the device a character or block special
	// file refers to.
	RDevMajor, RDevMinor uint32
	// Ino is the inode number. Zero makes the Writer assign one: the
	// entry's 1-based position in the archive, so numbering is deterministic.
	Ino uint32
}

// File returns a regular file record.
func File(name string, data []byte, perm uint32) Record {
	return Record{Name: name, Mode: TypeReg | perm&PermMask, Data: data}
}

// Dir returns a directory record.
func Dir(name string, perm uint32) Record {
	return Record{Name: name, Mode: TypeDir | perm&PermMask}
}

// Symlink returns a symbolic link record pointing at target.
func Symlink(name, target string) Record {
	return Record{Name: name, Mode: TypeSymlink | 0777, Data: []byte(target)}
}

// CharDev returns a character device node record, e.g.
// CharDev("dev/console", 0600, 5, 1).
func CharDev(name string, perm, major, minor uint32) Record {
	return Record{Name: name, Mode: TypeChar | perm&PermMask, RDevMajor: major, RDevMinor: minor}
}

// Type returns the file type bits of the mode.
func (r Record) Type() uint32 { return r.Mode & TypeMask }

// Perm returns the permission bits of the mode.
func (r Record) Perm() uint32 { return r.Mode & PermMask }

// IsDir reports whether r is a directory.
func (r Record) IsDir() bool { return r.Type() == TypeDir }

// IsRegular reports whether r is a regular file.
func (r Record) IsRegular() bool { return r.Type() == TypeReg }

// IsSymlink reports whether r is a symbolic link.
func (r Record) IsSymlink() bool { return r.Type() == TypeSymlink }

// CleanName strips leading slashes from name, the form names are stored in.
// It does no other normalisation: validation rejects names that are not
// already clean.
func CleanName(name string) string {
	return strings.TrimLeft(name, "/")
}

// validate checks r (whose name is already stripped of leading slashes) for
// what the writer can encode and the kernel will unpack as intended.
func (r *Record) validate() error {
	if err := validName(r.Name); err != nil {
		return err
	}
	switch r.Type() {
	case TypeReg:
	case TypeSymlink:
		if len(r.Data) == 0 {
			return fmt.Errorf("cpio: symlink %q has an empty target", r.Name)
		}
		if len(r.Data)+1 > maxNameSize {
			return fmt.Errorf("cpio: symlink %q: target longer than %d bytes", r.Name, maxNameSize-1)
		}
		if strings.IndexByte(string(r.Data), 0) >= 0 {
			return fmt.Errorf("cpio: symlink %q: target contains a NUL byte", r.Name)
		}
	case TypeDir, TypeChar, TypeBlock, TypeFifo, TypeSocket:
		if len(r.Data) != 0 {
			return fmt.Errorf("cpio: %q: only regular files and symlinks may have data (mode %06o)", r.Name, r.Mode)
		}
	default:
		return fmt.Errorf("cpio: %q: mode %06o has no valid file type (use TypeReg, TypeDir, TypeSymlink, ...)", r.Name, r.Mode)
	}
	if r.Mode&^(TypeMask|PermMask) != 0 {
		return fmt.Errorf("cpio: %q: mode %o has unknown bits set", r.Name, r.Mode)
	}
	if r.MTime < 0 || r.MTime > maxFileSize {
		return fmt.Errorf("cpio: %q: mtime %d does not fit the 32-bit header field", r.Name, r.MTime)
	}
	if int64(len(r.Data)) > maxFileSize {
		return fmt.Errorf("cpio: %q: %d bytes is too large for a newc archive (max 4 GiB - 1)", r.Name, len(r.Data))
	}
	return nil
}

// validName accepts relative, clean, slash-separated paths.
func validName(name string) error {
	switch {
	case name == "":
		return errors.New("cpio: empty name")
	case name == "." || name == trailerName:
		return fmt.Errorf("cpio: reserved name %q", name)
	case len(name)+1 > maxNameSize:
		return fmt.Errorf("cpio: name %.40q... longer than %d bytes", name, maxNameSize-1)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("cpio: name %q contains a NUL byte", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return fmt.Errorf("cpio: name %q contains a \"..\" component", name)
		}
	}
	if path.Clean(name) != name {
		return fmt.Errorf("cpio: name %q is not clean (want %q)", name, path.Clean(name))
	}
	return nil
}

// pad4 returns how many bytes bring n up to a multiple of 4.
func pad4(n int64) int64 { return (4 - n%4) % 4 }
