// Package deb reads Debian binary packages: an ar archive whose data.tar
// member (uncompressed, .xz, .gz or .zst) holds the package's files. kitrun
// takes kernels and boot loaders from Debian's packages; this is the one
// place that opens them.
//
// A package is untrusted input: every ar header field is checked before
// use, sizes are bounded (MaxDataBytes, MaxEntries, maxWindowBytes), and a
// damaged package is an error naming the member and what is wrong, never a
// panic. Extraction is pure Go and conservative: only regular files and
// directories are written; symlinks, hard links and devices are skipped;
// an entry whose name is absolute, escapes with "..", or lies under a
// skipped link makes the package invalid.
package deb

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const (
	// MaxDataBytes bounds the uncompressed data.tar of a package. Debian's
	// largest kernel packages unpack to a few hundred MiB.
	MaxDataBytes = 2 << 30
	// MaxEntries bounds the entries of data.tar (a kernel has about 1,400).
	MaxEntries = 100_000
	// maxWindowBytes bounds the history an xz or zstd decoder allocates
	// (xz -9 uses 64 MiB, zstd --long 128 MiB).
	maxWindowBytes = 128 << 20
	// maxVersionBytes bounds the debian-binary member ("2.0\n").
	maxVersionBytes = 64
)

// limits are the bounds of one extraction, lowered by tests and fuzzing to
// reach them quickly.
type limits struct {
	data    int64 // MaxDataBytes
	entries int   // MaxEntries
	window  int64 // maxWindowBytes
}

var packageLimits = limits{data: MaxDataBytes, entries: MaxEntries, window: maxWindowBytes}

// tooBig says that member unpacks to more than the limit.
func (l limits) tooBig(member string) error {
	return fmt.Errorf("%s unpacks to more than kitrun's limit of %s for a package", member, sizeText(l.data))
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Extract unpacks the files of the package at debPath whose names (relative,
// slash-separated, without a leading "./") want accepts into dir, which
// must exist. Parent directories are created as needed. On error, files
// already written stay in dir: callers extract into a temporary directory.
func Extract(ctx context.Context, debPath, dir string, want func(name string) bool) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("debian package: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("debian package: %w", err)
	}
	if err := extract(ctx, f, st.Size(), dir, want, packageLimits); err != nil {
		return fmt.Errorf("%s: %w", debPath, err)
	}
	return nil
}

// extract is Extract on a package of size bytes held in r.
func extract(ctx context.Context, r io.ReaderAt, size int64, dir string, want func(name string) bool, lim limits) error {
	arr, err := newArReader(r, size)
	if err != nil {
		return err
	}
	first, err := arr.next()
	if err == io.EOF {
		return errors.New("not a Debian package: the ar archive is empty")
	}
	if err != nil {
		return err
	}
	if err := checkFormatVersion(arr, first); err != nil {
		return err
	}
	for {
		m, err := arr.next()
		if err == io.EOF {
			return errors.New("not a Debian package: no data.tar member")
		}
		if err != nil {
			return err
		}
		if !strings.HasPrefix(m.Name, "data.tar") {
			continue
		}
		tr, closeTar, err := decompressor(m, arr.section(m), lim)
		if err != nil {
			return err
		}
		defer closeTar()
		if err := extractTar(ctx, tr, dir, want, lim); err != nil {
			if errors.Is(err, errTooBig) {
				return lim.tooBig(m.Name)
			}
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		return nil
	}
}

// checkFormatVersion checks that m, the first member, is debian-binary
// holding format 2.x, as deb(5) requires.
func checkFormatVersion(arr *arReader, m arMember) error {
	if m.Name != "debian-binary" {
		return fmt.Errorf("not a Debian package: the first ar member is %q, want debian-binary", m.Name)
	}
	if m.Size > maxVersionBytes {
		return fmt.Errorf("debian-binary is %d bytes; want a format version such as \"2.0\\n\"", m.Size)
	}
	b, err := io.ReadAll(arr.section(m))
	if err != nil {
		return fmt.Errorf("debian-binary: %w", err)
	}
	if !strings.HasPrefix(string(b), "2.") {
		return fmt.Errorf("unsupported package format %q in debian-binary; kitrun reads format 2.x", strings.TrimSpace(string(b)))
	}
	return nil
}

// decompressor returns the tar stream of data member m, counted against
// lim.data, and a function that releases the decoder.
func decompressor(m arMember, data *io.SectionReader, lim limits) (io.Reader, func(), error) {
	// The decompressors read in small pieces: buffer the file.
	br := bufio.NewReaderSize(data, 1<<20)
	var r io.Reader
	closer := func() {}
	switch m.Name {
	case "data.tar.xz":
		// Walk the framing first: it bounds the decoder's dictionary
		// and tells the size before anything is decompressed.
		if _, err := scanXZ(io.NewSectionReader(data, 0, m.Size), lim.data, lim.window); err != nil {
			if errors.Is(err, errTooBig) {
				return nil, nil, lim.tooBig(m.Name)
			}
			return nil, nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		r = xr
	case "data.tar.gz":
		gr, err := gzip.NewReader(br)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("gzip header: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		r = gr
	case "data.tar.zst":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(uint64(lim.window)))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		r, closer = zr, zr.Close
	case "data.tar":
		r = br
	default:
		return nil, nil, fmt.Errorf("%s: unsupported compression (kitrun reads .xz, .gz and .zst)", m.Name)
	}
	return &limitedReader{r: r, left: lim.data}, closer, nil
}

// limitedReader fails with errTooBig once more than left bytes are read,
// where io.LimitReader would end quietly and pass truncated data on.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	// Ask for one byte more than allowed: a stream that ends exactly at
	// the limit is fine, one that goes on is not.
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		return 0, errTooBig
	}
	l.left -= int64(n)
	return n, err
}

func extractTar(ctx context.Context, r io.Reader, dir string, want func(string) bool, lim limits) error {
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
	// Links are never created, so nothing may be extracted under one: in
	// the package it would have landed wherever the link points.
	links := map[string]bool{}
	for entries := 1; ; entries++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("entry %d: %w", entries, err)
		}
		if entries > lim.entries {
			return fmt.Errorf("more than kitrun's limit of %d entries in a package", lim.entries)
		}
		name, err := CleanName(h.Name)
		if err != nil {
			return err
		}
		if link := underLink(name, links); link != "" {
			return fmt.Errorf("refusing entry %q: it lies under %q, a link, which kitrun does not create", h.Name, link)
		}
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			links[name] = true
			continue
		}
		if name == "" || !want(name) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := mkdir(name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		case tar.TypeReg:
			if h.Size > lim.data {
				return fmt.Errorf("entry %q claims %d bytes, more than kitrun's limit of %s for a package", h.Name, h.Size, sizeText(lim.data))
			}
			if err := mkdir(path.Dir(name)); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			out, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode)&0o755|0o644)
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			_, err = io.CopyBuffer(out, tr, buf)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("entry %q: the archive ends inside it (%d bytes announced); the package is truncated", h.Name, h.Size)
				}
				return fmt.Errorf("extracting %s: %w", name, err)
			}
		default:
			// Devices, FIFOs: never created.
		}
	}
}

// underLink returns the link among links that is a parent directory of
// name, or "".
func underLink(name string, links map[string]bool) string {
	if len(links) == 0 {
		return ""
	}
	for i := range len(name) {
		if name[i] == '/' && links[name[:i]] {
			return name[:i]
		}
	}
	return ""
}

// CleanName turns "./lib/modules/x" into "lib/modules/x", "" for the root,
// and rejects names that would land outside the extraction directory.
func CleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("refusing entry %q: absolute or backslashed path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("refusing entry %q: path escapes with \"..\"", name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}
