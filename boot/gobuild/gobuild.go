// Package gobuild builds Go programs for a guest architecture and caches the
// results, so that an image whose Go sources did not change is reassembled
// without running the Go toolchain at all.
//
// Builds are static (CGO_ENABLED=0), stripped and -trimpath'd, which makes
// them byte-for-byte reproducible: the same sources and toolchain give the
// same binary, whichever directory they were built in.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/kitrun/kitrun/boot/atomicfile"
)

// Builder builds Go packages into a cache directory.
type Builder struct {
	// CacheDir holds built binaries, named by their input key.
	CacheDir string
	// GoTool is the go command; "go" from PATH when empty.
	GoTool string
	// Env is added to the go command's environment after the fixed
	// settings (CGO_ENABLED, GOOS, GOARCH, GOFLAGS), so it can pin more,
	// such as GOAMD64 for kitrun's own guest programs. It is part of the
	// cache key.
	Env []string
}

// Build builds the main package in pkgDir for goarch and returns the path of
// the cached binary. The cache key covers the toolchain, the target and the
// name, size and modification time of every Go source and module file of the
// package's module, so any edit rebuilds (go's own cache makes that cheap)
// and no edit costs only a directory walk.
func (b *Builder) Build(ctx context.Context, pkgDir, goarch string) (string, error) {
	pkgDir, err := filepath.Abs(pkgDir)
	if err != nil {
		return "", err
	}
	root, err := moduleRoot(pkgDir)
	if err != nil {
		return "", err
	}
	goVersion, err := b.goVersion(ctx)
	if err != nil {
		return "", err
	}
	key, err := inputKey(root, pkgDir, goarch, goVersion, b.Env)
	if err != nil {
		return "", err
	}
	out := filepath.Join(b.CacheDir, filepath.Base(pkgDir)+"-"+goarch+"-"+key)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return "", err
	}
	// The go tool writes its output in a private directory (two builds of
	// the same program may run at once, in parallel tests); the binary then
	// goes into place whole and durably, and the last of equal copies wins.
	work, err := atomicfile.TempDir(out)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "out")
	cmd := exec.CommandContext(ctx, b.goTool(), append(append([]string{"build"}, buildFlags...), "-o", bin, ".")...)
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), b.Environ(goarch)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s for %s: %v\n%s", pkgDir, goarch, err, strings.TrimSpace(stderr.String()))
	}
	err = atomicfile.WriteFrom(out, 0o755, func(w io.Writer) error {
		f, err := os.Open(bin)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return out, nil
}

// buildFlags are the fixed flags of every build: static, stripped, no
// build ID or VCS stamp, no host paths — what makes the output reproducible.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Environ is what Build adds to the go command's environment, for other
// go commands (go list) that must see the same build configuration.
func (b *Builder) Environ(goarch string) []string {
	return append([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch, "GOFLAGS="}, b.Env...)
}

// Describe says how Build builds for goarch, as a shell-like line.
func (b *Builder) Describe(goarch string) string {
	words := b.Environ(goarch)
	words = append(words, "go", "build")
	for _, f := range buildFlags {
		if strings.ContainsAny(f, " ") {
			f = "'" + f + "'"
		}
		words = append(words, f)
	}
	return strings.Join(words, " ")
}

func (b *Builder) goTool() string {
	if b.GoTool != "" {
		return b.GoTool
	}
	return "go"
}

var goVersions sync.Map // tool path -> version string

// goVersion identifies the toolchain; asked once per process because it
// costs a process start.
func (b *Builder) goVersion(ctx context.Context) (string, error) {
	tool := b.goTool()
	if v, ok := goVersions.Load(tool); ok {
		return v.(string), nil
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		return "", fmt.Errorf("building Go programs needs the Go toolchain: %v", err)
	}
	// The binary's identity (path, size, mtime) stands for its version:
	// reading it is far cheaper than running `go version`.
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	v := fmt.Sprintf("%s %d %d %s", path, st.Size(), st.ModTime().UnixNano(), os.Getenv("GOTOOLCHAIN"))
	goVersions.Store(tool, v)
	return v, nil
}

// moduleRoot finds the directory holding the go.mod that governs dir.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside a Go module (no go.mod above it)", dir)
		}
	}
}

// inputKey hashes what can change a build's output.
func inputKey(root, pkgDir, goarch, goVersion string, env []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%s\x00%s\x00%q\x00", goVersion, goarch, runtime.GOOS, pkgDir, env)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "out") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", rel, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}
