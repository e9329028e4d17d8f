package guestbin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/gobuild"
)

// Module is kitrun's module path: a checkout is a directory whose go.mod
// declares it.
const Module = "github.com/kitrun/kitrun"

// Options say where Get may take a program from.
type Options struct {
	// Checkout is a kitrun checkout to compare the embedded programs with;
	// see FindCheckout for what is used when it is empty.
	Checkout string
	// CacheDir is kitrun's cache: programs built from source are kept in
	// gobuild's cache under CacheDir/go/GOARCH.
	CacheDir string
}

// Get returns a guest program for a: the copy embedded in kitrun, unless
// kitrun runs from a checkout (FindCheckout) whose sources of that program
// differ from those the embedded copy was built from, or the arch has no
// embedded copy yet; then it is built from the checkout, which needs the Go
// toolchain. Binary.From says which.
func Get(ctx context.Context, program string, a arch.Arch, opts Options) (*Binary, error) {
	p, err := LookupProgram(program)
	if err != nil {
		return nil, err
	}
	checkout, err := FindCheckout(opts.Checkout)
	if err != nil {
		return nil, err
	}
	if checkout != "" && !matchesEmbedded(checkout, p, a) {
		return BuildFromSource(ctx, checkout, p, a, opts.CacheDir)
	}
	return EmbeddedBinary(program, a)
}

// matchesEmbedded reports whether the checkout's sources of p are those the
// embedded copy for a was built from.
func matchesEmbedded(checkout string, p Program, a arch.Arch) bool {
	m, err := Embedded()
	if err != nil {
		return false
	}
	b, ok := m.Bundle(a.Name)
	if !ok {
		return false
	}
	rec, ok := b.Record(p.Name)
	if !ok {
		return false
	}
	src, ok := m.Source(p.Name)
	if !ok {
		return false
	}
	d, err := SourceDigest(checkout, src)
	return err == nil && d == rec.SourceDigest
}

// BuildFromSource builds p for a from a kitrun checkout, the way `make
// generate` does (see Builder), caching the result under cacheDir.
func BuildFromSource(ctx context.Context, checkout string, p Program, a arch.Arch, cacheDir string) (*Binary, error) {
	gb := Builder(a, filepath.Join(cacheDir, "go", a.GOARCH))
	path, err := gb.Build(ctx, filepath.Join(checkout, filepath.FromSlash(p.Package)), a.GOARCH)
	if err != nil {
		return nil, fmt.Errorf("building %s for %s from the kitrun checkout %s (its sources differ from the embedded copy's): %w",
			p.Name, a.Name, checkout, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &Binary{Program: p.Name, Arch: a.Name, Data: data, SHA256: Digest(data), From: FromSource, Checkout: checkout}, nil
}

// Builder is the one way kitrun's guest programs are built, by `make
// generate` and from a checkout alike: gobuild's fixed, reproducible
// settings, plus the arch's GoEnv, plus env.
func Builder(a arch.Arch, cacheDir string, env ...string) *gobuild.Builder {
	return &gobuild.Builder{CacheDir: cacheDir, Env: append(append([]string(nil), a.GoEnv...), env...)}
}

// FindCheckout returns the kitrun checkout whose guest sources Get compares
// the embedded programs with: explicit when given, else $KITRUN_SRC, else
// the directory this kitrun was compiled from, while it still holds
// kitrun's source (never for a -trimpath build, nor a binary copied to
// another machine). The working directory plays no part: an installed
// kitrun behaves the same wherever it is run. "" means there is none.
// An explicit directory or $KITRUN_SRC that is not a checkout is an error.
func FindCheckout(explicit string) (string, error) {
	for _, c := range []struct{ dir, what string }{{explicit, "kitrun source directory"}, {os.Getenv("KITRUN_SRC"), "$KITRUN_SRC"}} {
		if c.dir == "" {
			continue
		}
		if !IsCheckout(c.dir) {
			return "", fmt.Errorf("%s %s is not a kitrun checkout (no go.mod declaring module %s)", c.what, c.dir, Module)
		}
		return filepath.Abs(c.dir)
	}
	if dir := compiledFrom(); dir != "" && IsCheckout(dir) {
		return dir, nil
	}
	return "", nil
}

// compiledFrom is the module root this file was compiled in, when the
// compiler recorded an absolute path (not under -trimpath).
func compiledFrom() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file))) // this file is boot/guestbin/source.go
}

// IsCheckout reports whether dir is the root of kitrun's module.
func IsCheckout(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && modfile.ModulePath(data) == Module
}

// SourceDigest hashes what src says a program is built from, as found in
// the checkout: every file of each package directory but tests (a file
// excluded by build constraints counts too: that errs towards building
// from source), the go directive, and the required version (and any
// replacement) of each other module. It needs no Go toolchain, so kitrun
// can tell cheaply whether its embedded copy is current.
func SourceDigest(checkout string, src Source) (string, error) {
	gomod := filepath.Join(checkout, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	mf, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "kitrun guest sources v1\n")
	if mf.Go != nil {
		fmt.Fprintf(h, "go %s\n", mf.Go.Version)
	}
	for _, mod := range sorted(src.Modules) {
		version := "(not required)"
		for _, r := range mf.Require {
			if r.Mod.Path == mod {
				version = r.Mod.Version
			}
		}
		fmt.Fprintf(h, "module %s %s\n", mod, version)
		for _, r := range mf.Replace {
			if r.Old.Path == mod {
				fmt.Fprintf(h, "replace %s %s => %s %s\n", r.Old.Path, r.Old.Version, r.New.Path, r.New.Version)
			}
		}
	}
	for _, dir := range sorted(src.Packages) {
		if !filepath.IsLocal(filepath.FromSlash(dir)) {
			return "", fmt.Errorf("package directory %q is not inside the module", dir)
		}
		fmt.Fprintf(h, "package %s\n", dir)
		entries, err := os.ReadDir(filepath.Join(checkout, filepath.FromSlash(dir)))
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(h, "missing\n")
			continue
		}
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			content, err := os.ReadFile(filepath.Join(checkout, filepath.FromSlash(dir), name))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "file %s %s\n", name, Digest(content))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
