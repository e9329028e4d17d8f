// Package gobuild builds Go programs for a guest architecture and caches the
// results, so that an image whose Go program did not change is reassembled
// without building it again.
//
// Builds are static (CGO_ENABLED=0), stripped and -trimpath'd, which makes
// them byte-for-byte reproducible: the same sources and toolchain give the
// same binary, whichever directory they were built in. GOFLAGS is cleared
// unless Builder.Env sets it; other settings of the environment (GOAMD64,
// GOEXPERIMENT …) apply.
//
// The cache key is what the Go tool itself says the build reads: `go list
// -deps` with the build's own environment and flags names every package
// the program is made of, with its Go, assembly and //go:embed'ded files,
// and the module each comes from (a `replace`d directory anywhere on disk
// included). Files outside the module cache are hashed by content; a
// module in the module cache is immutable and counts by path and version;
// the standard library counts by the toolchain's version. The build
// settings that change the output (GOFLAGS, GOEXPERIMENT, GOAMD64 and the
// other GOARCH levels, GOVERSION, GOROOT, go.work …) are part of the key.
// Nothing else is read, so a warm build costs one `go list` and one `go
// env` (run side by side), however large the repository around the program.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/runtimedir"
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

// buildFlags are the fixed flags of every build: static, stripped, no
// build ID or VCS stamp, no host paths — what makes the output
// reproducible. The `go list` that finds a build's inputs gets them too, so
// that both see the same packages.
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

// keyEnv are the `go env` settings that can change a build's output or the
// set of files it reads. Unknown names read as "" in older toolchains.
var keyEnv = []string{
	"GOVERSION", "GOROOT", "GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOEXPERIMENT", "GODEBUG",
	"GOAMD64", "GOARM", "GOARM64", "GO386", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64", "GOWASM",
	"GOFIPS140", "GO111MODULE", "GOWORK", "GOMODCACHE", "GOTOOLCHAIN",
}

// Build builds the main package in pkgDir for goarch and returns the path of
// the cached binary.
func (b *Builder) Build(ctx context.Context, pkgDir, goarch string) (string, error) {
	pkgDir, err := filepath.Abs(pkgDir)
	if err != nil {
		return "", err
	}
	tool, err := exec.LookPath(b.goTool())
	if err != nil {
		return "", fmt.Errorf("building Go programs needs the Go toolchain: %v", err)
	}
	env := append(os.Environ(), b.Environ(goarch)...)
	if os.Getenv("GOTMPDIR") == "" {
		// The go tool's work directories go into this process's runtime
		// directory, which the next kitrun start sweeps if this one is
		// killed: left in $TMPDIR, a killed build's go-build* stays.
		if dir, err := runtimedir.Dir(); err == nil {
			env = append(env, "GOTMPDIR="+dir)
		}
	}
	key, err := inputKey(ctx, tool, pkgDir, env, b.Env)
	if err != nil {
		return "", fmt.Errorf("go build %s for %s: %w", pkgDir, goarch, err)
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
	args := append(append([]string{"build"}, buildFlags...), "-o", bin, ".")
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir, cmd.Env = pkgDir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s for %s: %v\n%s", pkgDir, goarch, err, strings.TrimSpace(stderr.String()))
	}
	if err := copyInto(out, bin); err != nil {
		return "", err
	}
	return out, nil
}

func (b *Builder) goTool() string {
	if b.GoTool != "" {
		return b.GoTool
	}
	return "go"
}

func copyInto(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteFrom(dst, 0o755, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// listedPackage is what the key needs of `go list -json`.
type listedPackage struct {
	Dir        string
	ImportPath string
	Standard   bool
	Module     *listedModule
	// The files the build reads, relative to Dir.
	GoFiles, CgoFiles, CFiles, CXXFiles, MFiles, HFiles, FFiles, SFiles []string
	SwigFiles, SwigCXXFiles, SysoFiles, EmbedFiles                      []string
}

type listedModule struct {
	Path    string
	Version string
	Dir     string
	GoMod   string
	Replace *listedModule
}

// listFields asks `go list` for only what listedPackage holds.
const listFields = "Dir,ImportPath,Standard,Module,GoFiles,CgoFiles,CFiles,CXXFiles,MFiles,HFiles,FFiles,SFiles,SwigFiles,SwigCXXFiles,SysoFiles,EmbedFiles"

// inputKey hashes everything that can change the build of pkgDir in env
// (extra: the Builder's own settings, hashed as given too).
func inputKey(ctx context.Context, tool, pkgDir string, env, extra []string) (string, error) {
	type result struct {
		out []byte
		err error
	}
	goEnv := make(chan result, 1)
	go func() {
		out, err := goCommand(ctx, tool, pkgDir, env, append([]string{"env", "-json"}, keyEnv...)...)
		goEnv <- result{out, err}
	}()
	listArgs := append(append([]string{"list", "-deps", "-json=" + listFields}, buildFlags...), ".")
	list, err := goCommand(ctx, tool, pkgDir, env, listArgs...)
	ge := <-goEnv
	if err != nil {
		return "", err
	}
	if ge.err != nil {
		return "", ge.err
	}
	var settings map[string]string
	if err := json.Unmarshal(ge.out, &settings); err != nil {
		return "", fmt.Errorf("reading `go env -json`: %v", err)
	}

	h := sha256.New()
	field := func(s ...string) {
		for _, x := range s {
			io.WriteString(h, x)
			h.Write([]byte{0})
		}
	}
	field("gobuild v2")
	field(buildFlags...)
	field(extra...)
	field("end of extra")
	for _, k := range keyEnv {
		field(k, settings[k])
	}
	// The binary stands in for toolchains that share a version string
	// (development builds).
	st, err := os.Stat(tool)
	if err != nil {
		return "", err
	}
	field("tool", tool, fmt.Sprint(st.Size(), st.ModTime().UnixNano()))
	if w := settings["GOWORK"]; w != "" && w != "off" {
		if err := hashFile(h, w); err != nil {
			return "", err
		}
	}

	modCache := settings["GOMODCACHE"]
	goMods := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(list))
	var main listedPackage
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("reading `go list -json`: %v", err)
		}
		main = p // `go list -deps` lists the package itself last
		if p.Standard {
			continue // the toolchain's version covers it
		}
		field("package", p.ImportPath, p.Dir)
		if m := p.Module; m != nil {
			if m.Replace != nil {
				m = m.Replace
			}
			field("module", m.Path, m.Version)
			if m.Version != "" && modCache != "" && inside(p.Dir, modCache) {
				continue // a module cache entry never changes
			}
			if m.GoMod != "" && !goMods[m.GoMod] {
				goMods[m.GoMod] = true
				field("go.mod", m.GoMod)
				if err := hashFile(h, m.GoMod); err != nil {
					return "", err
				}
			}
		}
		for _, files := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.CXXFiles, p.MFiles, p.HFiles, p.FFiles,
			p.SFiles, p.SwigFiles, p.SwigCXXFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range files {
				field("file", f)
				if err := hashFile(h, filepath.Join(p.Dir, f)); err != nil {
					return "", err
				}
			}
		}
	}
	// -pgo=auto, the default, uses the main package's default.pgo.
	if main.Dir != "" {
		if err := hashFile(h, filepath.Join(main.Dir, "default.pgo")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// goCommand runs the go tool in dir and returns its stdout.
func goCommand(ctx context.Context, tool, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// hashFile adds the size and content of path to h.
func hashFile(h hash.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "\x00%d\x00", n)
	return nil
}

// inside says whether path is dir or below it.
func inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
