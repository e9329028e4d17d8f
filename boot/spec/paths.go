package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// guestPath returns the value of key as a path inside the image. It must be
// absolute and clean, because the assembler places files by exact path and
// "/usr/bin/../x" or "/etc/motd/" would silently mean something else; "/"
// itself is allowed only where rootOK (a working directory).
func (f *fields) guestPath(key string, rootOK bool) (string, bool) {
	n, ok := f.scalar(key, "an absolute path in the image")
	if !ok {
		return "", false
	}
	return f.p.checkGuestPath(f.p.at(n), f.label(key), n.Value, rootOK)
}

func (p *parser) checkGuestPath(pos Pos, label, s string, rootOK bool) (string, bool) {
	switch clean := path.Clean("/" + s); {
	case s == "":
		p.errorf(pos, "%s: must not be empty; use an absolute path in the image like /usr/bin/name", label)
	case !strings.HasPrefix(s, "/"):
		p.errorf(pos, "%s: %q is not an absolute path; use %q", label, s, clean)
	case s != clean:
		p.errorf(pos, "%s: %q is not a clean path; use %q", label, s, clean)
	case s == "/" && !rootOK:
		p.errorf(pos, "%s: \"/\" is the root directory; use a path below it", label)
	default:
		return s, true
	}
	return "", false
}

// hostPath resolves the value of key, a path on the build host, against the
// spec's directory (so specs work from any working directory) and stats it.
// A missing path is reported as "no such <noun>".
func (f *fields) hostPath(key, noun string) (string, fs.FileInfo, bool) {
	n, ok := f.scalar(key, "a path on the host")
	if !ok {
		return "", nil, false
	}
	abs := n.Value
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(f.p.dir, abs)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		msg := "no such " + noun
		if abs != n.Value {
			msg += fmt.Sprintf(" (resolved to %s)", abs)
		}
		f.hostError(key, "%s", msg)
		return "", nil, false
	case err != nil:
		f.hostError(key, "%v", errors.Unwrap(err)) // the *PathError's path repeats the value
		return "", nil, false
	}
	return abs, fi, true
}

// hostError reports a problem with a host path as `key "value": problem`,
// quoting the path as written so the user can find it in the spec.
func (f *fields) hostError(key, format string, args ...any) {
	f.p.errorf(f.pos(key), "%s %q: %s", f.label(key), f.values[key].Value, fmt.Sprintf(format, args...))
}

// hostFile returns the absolute path of a regular file on the host.
// expected describes the file for messages ("a .deb file").
func (f *fields) hostFile(key, expected string) (string, fs.FileInfo, bool) {
	abs, fi, ok := f.hostPath(key, "file")
	switch {
	case !ok:
		return "", nil, false
	case fi.IsDir():
		f.hostError(key, "is a directory; expected %s", expected)
		return "", nil, false
	case !fi.Mode().IsRegular():
		f.hostError(key, "is not a regular file; expected %s", expected)
		return "", nil, false
	}
	return abs, fi, true
}

// hostDir returns the absolute path of a directory on the host.
func (f *fields) hostDir(key, expected string) (string, bool) {
	abs, fi, ok := f.hostPath(key, "directory")
	if !ok {
		return "", false
	}
	if !fi.IsDir() {
		f.hostError(key, "is not a directory; expected %s", expected)
		return "", false
	}
	return abs, true
}
