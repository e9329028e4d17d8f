// Package deb reads Debian binary packages: an ar archive whose data.tar
// member (uncompressed, .xz, .gz or .zst) holds the package's files. kitrun
// takes kernels and boot loaders from Debian's packages; this is the one
// place that opens them.
//
// Extraction is pure Go and conservative: only regular files and
// directories are written; symlinks, hard links and devices are skipped;
// an entry whose name is absolute or escapes with ".." makes the package
// invalid.
package deb

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/blakesmith/ar"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Extract unpacks the files of the package at debPath whose names (relative,
// slash-separated, without a leading "./") want accepts into dir, which
// must exist. Parent directories are created as needed.
func Extract(ctx context.Context, debPath, dir string, want func(name string) bool) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("debian package: %w", err)
	}
	defer f.Close()
	var magic [8]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != "!<arch>\n" {
		return fmt.Errorf("%s is not a Debian package (no ar archive header)", debPath)
	}
	arr := ar.NewReader(f)
	for {
		h, err := arr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s is not a Debian package: no data.tar member", debPath)
		}
		if err != nil {
			return fmt.Errorf("%s: reading ar archive: %w", debPath, err)
		}
		name := strings.TrimSuffix(strings.TrimSpace(h.Name), "/")
		if !strings.HasPrefix(name, "data.tar") {
			continue
		}
		// The decompressors read in small pieces, and the ar reader has no
		// buffering of its own.
		br := bufio.NewReaderSize(arr, 1<<20)
		var tr io.Reader
		switch name {
		case "data.tar.xz":
			xr, err := xz.NewReader(br)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", debPath, name, err)
			}
			tr = xr
		case "data.tar.gz":
			gr, err := gzip.NewReader(br)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", debPath, name, err)
			}
			tr = gr
		case "data.tar.zst":
			zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return fmt.Errorf("%s: %s: %w", debPath, name, err)
			}
			defer zr.Close()
			tr = zr
		case "data.tar":
			tr = br
		default:
			return fmt.Errorf("%s: %s: unsupported compression (kitrun reads .xz, .gz and .zst)", debPath, name)
		}
		if err := extractTar(ctx, tr, dir, want); err != nil {
			return fmt.Errorf("%s: %w", debPath, err)
		}
		return nil
	}
}

func extractTar(ctx context.Context, r io.Reader, dir string, want func(string) bool) error {
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	madeDirs := map[string]bool{}
	mkdir := func(rel string) error {
		if madeDirs[rel] {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(rel)), 0o755); err != nil {
			return err
		}
		madeDirs[rel] = true
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("data.tar: %w", err)
		}
		name, err := CleanName(h.Name)
		if err != nil {
			return err
		}
		if name == "" || !want(name) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := mkdir(name); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := mkdir(path.Dir(name)); err != nil {
				return err
			}
			out, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode)&0o755|0o644)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(out, tr, buf)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
		default:
			// Symlinks, hard links, devices: never followed or created.
		}
	}
}

// CleanName turns "./lib/modules/x" into "lib/modules/x", "" for the root,
// and rejects names that would land outside the extraction directory.
func CleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("data.tar: refusing entry %q: absolute or backslashed path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("data.tar: refusing entry %q: path escapes with \"..\"", name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}
