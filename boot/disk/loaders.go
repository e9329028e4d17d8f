package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/kitrun/kitrun/boot/deb"
)

// Loaders finds the boot loader and EFI stub files that disk images take
// from Debian's packages. The packages are downloaded into PackageDir by
// `make deps` (scripts/fetch-packages.sh), the way kernels are, and each is
// unpacked once into CacheDir.
type Loaders struct {
	// PackageDir holds the downloaded .deb files.
	PackageDir string
	// CacheDir holds their unpacked contents.
	CacheDir string

	mu   sync.Mutex
	dirs map[string]string // package:arch → extraction
}

// File returns the host path of member (slash-separated, relative to the
// package's root, e.g. "usr/lib/ISOLINUX/isolinux.bin") of Debian package
// pkg for Debian architecture debArch ("all" for architecture-independent
// packages).
func (l *Loaders) File(ctx context.Context, pkg, debArch, member string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := pkg + ":" + debArch
	dir, ok := l.dirs[key]
	if !ok {
		debPath, err := deb.Find(l.PackageDir, pkg, debArch)
		if err != nil {
			return "", err
		}
		if dir, err = deb.ExtractCached(ctx, debPath, l.CacheDir); err != nil {
			return "", err
		}
		if l.dirs == nil {
			l.dirs = map[string]string{}
		}
		l.dirs[key] = dir
	}
	p := filepath.Join(dir, filepath.FromSlash(member))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("package %s (%s) has no %s", pkg, debArch, member)
	}
	return p, nil
}
