package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kitrun/kitrun/boot/atomicfile"
)

// NotFoundError says that Find found no such package, and how to get one.
// It matches fs.ErrNotExist with errors.Is.
type NotFoundError struct {
	Dir, Package, Arch string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no %s package for %s in %s; run `make deps`, or `apt-get download %s:%s` there",
		e.Package, e.Arch, e.Dir, e.Package, e.Arch)
}

func (e *NotFoundError) Unwrap() error { return fs.ErrNotExist }

// Find returns the newest .deb of package pkg for Debian architecture
// debArch ("amd64", "arm64", or "all") among the files of dir named as apt
// downloads them: pkg_VERSION_ARCH.deb.
func Find(dir, pkg, debArch string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("package cache: %w", err)
	}
	best, bestVer := "", ""
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".deb")
		if !ok {
			continue
		}
		f := strings.Split(base, "_")
		if len(f) != 3 || f[0] != pkg || f[2] != debArch {
			continue
		}
		// apt-get download escapes the epoch's ':' as "%3a".
		ver := strings.NewReplacer("%3a", ":", "%3A", ":").Replace(f[1])
		if best == "" || CompareVersions(ver, bestVer) > 0 {
			best, bestVer = e.Name(), ver
		}
	}
	if best == "" {
		return "", &NotFoundError{Dir: dir, Package: pkg, Arch: debArch}
	}
	return filepath.Join(dir, best), nil
}

// ExtractCached unpacks every regular file of the package at debPath into
// cacheDir/<first 16 hex digits of its SHA-256>/ once, and returns that
// directory. A finished extraction is never rewritten: it is built in a
// temporary sibling and renamed into place, and a concurrent extraction
// that loses the race uses the winner's.
func ExtractCached(ctx context.Context, debPath, cacheDir string) (string, error) {
	sum, err := fileSum(debPath)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(cacheDir, sum[:16])
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		return dest, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := atomicfile.TempDir(dest)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := Extract(ctx, debPath, tmp, func(string) bool { return true }); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dest); err != nil {
		if st, serr := os.Stat(dest); serr == nil && st.IsDir() {
			return dest, nil // another process finished first
		}
		return "", err
	}
	return dest, nil
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
