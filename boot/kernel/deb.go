package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/deb"
	"github.com/kitrun/kitrun/boot/flock"
)

// Layout of an extraction directory, cacheDir/<first 16 hex digits of the
// .deb's SHA-256>/:
//
//	boot/vmlinuz-<ver>, boot/config-<ver>
//	lib/modules/<ver>/...        (as in the package)
//	kitrun-kernel.json           (manifest, see below)
//	kitrun-modindex.json         (module index cache, written by Modules)
//
// An extraction is built in a temporary sibling directory ".tmp-<key>-*" and
// renamed into place when complete, so the existence of cacheDir/<key> means
// a finished extraction. Concurrent FromDeb calls for the same package
// serialise on the lock file cacheDir/<key>.lock; the loser of the race finds
// the winner's extraction.
const (
	manifestName   = "kitrun-kernel.json"
	indexCacheName = "kitrun-modindex.json"
	manifestFormat = 1
	keyLen         = 16
)

type manifest struct {
	Format     int
	SHA256     string
	Deb        string // the .deb it was extracted from (informational)
	Version    string
	Image      string // relative to the extraction directory
	Config     string `json:",omitempty"`
	ModulesDir string
}

// FromDeb returns the kernel in a Debian linux-image .deb, extracting the
// kernel image, its config and lib/modules/ into cacheDir/<key>/ on first use
// (key: the first 16 hex digits of the package's SHA-256). Later calls find
// the finished extraction and return without reading the package (the hash
// is remembered per path, size and mtime in cacheDir/.debsums/).
//
// Extraction is pure Go; everything but boot/vmlinuz*, boot/config* and
// lib/modules/** (also usr/lib/modules/**) is skipped, as are symlinks and
// hard links. Entries whose names are absolute or escape with ".." make the
// package invalid.
func FromDeb(ctx context.Context, debPath, cacheDir string) (*Kernel, error) {
	if cacheDir == "" {
		return nil, errors.New("kernel: FromDeb needs a cache directory")
	}
	deb, err := filepath.Abs(debPath)
	if err != nil {
		return nil, err
	}
	if cacheDir, err = filepath.Abs(cacheDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	sum, err := debSum(deb, cacheDir)
	if err != nil {
		return nil, err
	}
	key := sum[:keyLen]
	dest := filepath.Join(cacheDir, key)
	if k, err := loadExtraction(dest); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	lk, err := flock.Wait(ctx, filepath.Join(cacheDir, key+".lock"), flock.Exclusive, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	defer lk.Unlock()
	// Someone may have finished while we waited for the lock.
	if k, err := loadExtraction(dest); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// Leftovers of interrupted extractions: nobody else can be writing them
	// while we hold the lock.
	if flock.Works {
		stale, _ := filepath.Glob(filepath.Join(cacheDir, "."+key+".tmp-*"))
		older, _ := filepath.Glob(filepath.Join(cacheDir, ".tmp-"+key+"-*")) // before atomicfile
		for _, s := range append(stale, older...) {
			os.RemoveAll(s)
		}
	}
	tmp, err := atomicfile.TempDir(dest)
	if err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	m, err := extractDeb(ctx, deb, tmp)
	if err == nil {
		m.SHA256, m.Deb = sum, deb
		err = writeJSON(filepath.Join(tmp, manifestName), m)
	}
	if err == nil {
		err = os.Chmod(tmp, 0o755) // TempDir made it private
	}
	if err == nil {
		if err = os.Rename(tmp, dest); err != nil {
			// Without a working lock another process may have won the race.
			if k, lerr := loadExtraction(dest); lerr == nil {
				os.RemoveAll(tmp)
				return k, nil
			}
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return loadExtraction(dest)
}

// loadExtraction reads a finished extraction's manifest. A missing directory
// gives an error wrapping fs.ErrNotExist.
func loadExtraction(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr == nil {
				return nil, fmt.Errorf("kernel cache %s has no %s; it was not made by kitrun, remove it", dir, manifestName)
			}
		}
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Format != manifestFormat {
		return nil, fmt.Errorf("kernel cache %s: unreadable manifest (format %d, %v); remove the directory", dir, m.Format, err)
	}
	k := &Kernel{
		Version:    m.Version,
		Image:      filepath.Join(dir, filepath.FromSlash(m.Image)),
		ModulesDir: filepath.Join(dir, filepath.FromSlash(m.ModulesDir)),
		indexCache: filepath.Join(dir, indexCacheName),
	}
	if m.Config != "" {
		k.Config = filepath.Join(dir, filepath.FromSlash(m.Config))
	}
	return k, nil
}

// debSum returns the hex SHA-256 of the package, remembering it in
// cacheDir/.debsums/ keyed by path and checked against size, mtime and inode.
func debSum(deb, cacheDir string) (string, error) {
	st, err := os.Stat(deb)
	if err != nil {
		return "", fmt.Errorf("kernel package: %w", err)
	}
	type memo struct {
		Path    string
		Size    int64
		ModTime int64
		Ino     uint64
		SHA256  string
	}
	want := memo{Path: deb, Size: st.Size(), ModTime: st.ModTime().UnixNano(), Ino: inode(st)}
	p := sha256.Sum256([]byte(deb))
	memoFile := filepath.Join(cacheDir, ".debsums", hex.EncodeToString(p[:8])+".json")
	if b, err := os.ReadFile(memoFile); err == nil {
		var got memo
		if json.Unmarshal(b, &got) == nil && len(got.SHA256) == 64 {
			sum := got.SHA256
			got.SHA256 = ""
			if got == want {
				return sum, nil
			}
		}
	}
	f, err := os.Open(deb)
	if err != nil {
		return "", fmt.Errorf("kernel package: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("kernel package %s: %w", deb, err)
	}
	want.SHA256 = hex.EncodeToString(h.Sum(nil))
	// The memo is only an optimisation: ignore failures to write it.
	if os.MkdirAll(filepath.Dir(memoFile), 0o755) == nil {
		writeJSON(memoFile, want)
	}
	return want.SHA256, nil
}

// writeJSON writes v to file atomically.
func writeJSON(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.Write(file, append(b, '\n'), 0o644)
}

// extractDeb unpacks the parts of the package kitrun needs into dir.
func extractDeb(ctx context.Context, debPath, dir string) (*manifest, error) {
	if err := deb.Extract(ctx, debPath, dir, wanted); err != nil {
		return nil, err
	}
	m, err := describe(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	return m, nil
}

// wanted selects the package members kitrun needs.
func wanted(name string) bool {
	return strings.HasPrefix(name, "boot/vmlinuz") || strings.HasPrefix(name, "boot/vmlinux") ||
		strings.HasPrefix(name, "boot/config") ||
		strings.HasPrefix(name, "lib/modules/") || strings.HasPrefix(name, "usr/lib/modules/")
}

// describe finds the version, image, config and modules in an extraction.
func describe(dir string) (*manifest, error) {
	var mods []string // relative paths of lib/modules/<ver> directories
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(base)))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				mods = append(mods, base+"/"+e.Name())
			}
		}
	}
	sort.Strings(mods)
	if len(mods) != 1 {
		return nil, fmt.Errorf("want exactly one lib/modules/<version> directory in the package, found %d (%s)", len(mods), strings.Join(mods, ", "))
	}
	m := &manifest{Format: manifestFormat, ModulesDir: mods[0], Version: path.Base(mods[0])}
	for _, img := range []string{"boot/vmlinuz-" + m.Version, "boot/vmlinux-" + m.Version} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(img))); err == nil {
			m.Image = img
			break
		}
	}
	if m.Image == "" {
		return nil, fmt.Errorf("no boot/vmlinuz-%s in the package", m.Version)
	}
	if cfg := "boot/config-" + m.Version; fileExists(filepath.Join(dir, filepath.FromSlash(cfg))) {
		m.Config = cfg
	}
	return m, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
