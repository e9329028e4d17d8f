// Command gen builds kitrun's guest programs for every arch of boot/arch's
// table and writes them, compressed, with their manifest, into
// boot/guestbin/embedded: `make generate` (or `go generate
// ./boot/guestbin`). With -check it builds them afresh and compares them with
// what is committed instead, and fails naming what differs: `make
// check-generated`.
//
// The build is gobuild's (CGO_ENABLED=0, -trimpath, no build ID or VCS
// stamp, stripped) plus the arch's GoEnv, so the same sources and toolchain
// give the same bytes on any machine. The toolchain is part of the input:
// -check builds with the one the manifest records, which the go command
// fetches (GOTOOLCHAIN) when the local one differs.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/guestbin"
)

// pkgDir is boot/guestbin inside the module.
const pkgDir = "boot/guestbin"

func main() {
	check := flag.Bool("check", false, "build afresh and compare with the committed files instead of writing them")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *check {
		err = runCheck(ctx, os.Stdout)
	} else {
		err = runGenerate(ctx, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func runGenerate(ctx context.Context, log io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	g, err := generate(ctx, root, nil)
	if err != nil {
		return err
	}
	report(log, g)
	return g.write(filepath.Join(root, filepath.FromSlash(pkgDir), guestbin.Dir))
}

func runCheck(ctx context.Context, log io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	committed, err := guestbin.ReadManifest(os.DirFS(filepath.Join(root, filepath.FromSlash(pkgDir))))
	if err != nil {
		return err
	}
	env, err := recordedToolchain(ctx, committed, log)
	if err != nil {
		return err
	}
	g, err := generate(ctx, root, env)
	if err != nil {
		return err
	}
	if problems := compare(os.DirFS(filepath.Join(root, filepath.FromSlash(pkgDir))), committed, g.manifest); len(problems) > 0 {
		return fmt.Errorf("the embedded guest programs are not what the sources build:\n  %s\nrun `make generate` and commit %s/%s",
			strings.Join(problems, "\n  "), pkgDir, guestbin.Dir)
	}
	fmt.Fprintf(log, "embedded guest programs match a fresh build (%s, %s)\n",
		strings.Join(g.manifest.GoVersions(), ", "), strings.Join(g.manifest.Arches(), ", "))
	return nil
}

// recordedToolchain returns the environment that makes the go command use
// the toolchain the committed programs were built with: nothing when it is
// the local one, else GOTOOLCHAIN, which has the go command fetch it.
func recordedToolchain(ctx context.Context, m *guestbin.Manifest, log io.Writer) ([]string, error) {
	recorded := m.GoVersions()
	if len(recorded) != 1 {
		return nil, fmt.Errorf("the embedded programs were built with %d toolchains (%v); run `make generate`", len(recorded), recorded)
	}
	local, err := goEnv(ctx, nil, "GOVERSION")
	if err != nil {
		return nil, err
	}
	if local == recorded[0] {
		return nil, nil
	}
	fmt.Fprintf(log, "the embedded programs were built with %s, the local toolchain is %s: building with %s (GOTOOLCHAIN)\n", recorded[0], local, recorded[0])
	return []string{"GOTOOLCHAIN=" + recorded[0]}, nil
}

// generated is the result of a generation: the manifest and each bundle's
// compressed bytes (by file name), plus sizes for the report.
type generated struct {
	manifest *guestbin.Manifest
	files    map[string][]byte
}

// generate builds every program for every arch from the checkout at root
// with the go command's environment plus env.
func generate(ctx context.Context, root string, env []string) (*generated, error) {
	goVersion, err := goEnv(ctx, env, "GOVERSION")
	if err != nil {
		return nil, err
	}
	cache, err := os.MkdirTemp("", "kitrun-guestbin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	arches := arch.All()
	m := &guestbin.Manifest{
		Version:     guestbin.ManifestVersion,
		Compression: guestbin.Compression,
		Build:       guestbin.Builder(arch.Arch{}, "", env...).Describe("$GOARCH") + " (+ the arch's GoEnv)",
	}
	for _, p := range guestbin.Programs {
		src, err := sources(ctx, root, p, arches, env)
		if err != nil {
			return nil, err
		}
		m.Sources = append(m.Sources, src)
	}
	g := &generated{manifest: m, files: map[string][]byte{}}
	for _, a := range arches {
		gb := guestbin.Builder(a, filepath.Join(cache, a.GOARCH), env...)
		var bundle []byte
		b := guestbin.Bundle{Arch: a.Name, File: a.Name + ".zst"}
		for i, p := range guestbin.Programs {
			path, err := gb.Build(ctx, filepath.Join(root, filepath.FromSlash(p.Package)), a.GOARCH)
			if err != nil {
				return nil, err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			b.Binaries = append(b.Binaries, guestbin.Record{
				Program: p.Name, Offset: int64(len(bundle)), Size: int64(len(data)),
				SHA256: guestbin.Digest(data), Go: goVersion, SourceDigest: m.Sources[i].Digest,
			})
			bundle = append(bundle, data...)
		}
		compressed, err := compress(bundle)
		if err != nil {
			return nil, err
		}
		b.Size, b.SHA256 = int64(len(compressed)), guestbin.Digest(compressed)
		m.Bundles = append(m.Bundles, b)
		g.files[b.File] = compressed
	}
	return g, nil
}

// sources asks the go command which of kitrun's packages and which other
// modules p is built from, for every arch, and digests them.
func sources(ctx context.Context, root string, p guestbin.Program, arches []arch.Arch, env []string) (guestbin.Source, error) {
	src := guestbin.Source{Program: p.Name}
	const format = `{{if not .Standard}}{{.Dir}}{{"\t"}}{{with .Module}}{{.Path}}{{"\t"}}{{.Main}}{{end}}{{end}}`
	for _, a := range arches {
		cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", format, "./"+p.Package)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), guestbin.Builder(a, "", env...).Environ(a.GOARCH)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return src, fmt.Errorf("go list %s for %s: %v\n%s", p.Package, a.Name, err, strings.TrimSpace(stderr.String()))
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "\t")
			if len(f) != 3 {
				continue // a standard-library package
			}
			if f[2] != "true" {
				src.Modules = appendNew(src.Modules, f[1])
				continue
			}
			rel, err := filepath.Rel(root, f[0])
			if err != nil || !filepath.IsLocal(rel) {
				return src, fmt.Errorf("package directory %s is outside the module at %s", f[0], root)
			}
			src.Packages = appendNew(src.Packages, filepath.ToSlash(rel))
		}
	}
	slices.Sort(src.Packages)
	slices.Sort(src.Modules)
	d, err := guestbin.SourceDigest(root, src)
	if err != nil {
		return src, err
	}
	src.Digest = d
	return src, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// compress is deterministic: one goroutine, a fixed level, and a window
// covering the whole bundle so that later programs can refer back to the
// runtime code of earlier ones.
func compress(data []byte) ([]byte, error) {
	window := zstd.MinWindowSize
	if n := len(data); n > window {
		window = 1 << bits.Len(uint(n-1))
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(min(window, zstd.MaxWindowSize)))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil), nil
}

// write replaces the generated files in dir: every bundle, then the
// manifest, then bundles of arches no longer in the table are removed.
func (g *generated) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range g.files {
		if err := atomicfile.Write(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	mj, err := json.MarshalIndent(g.manifest, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, guestbin.ManifestFile), append(mj, '\n'), 0o644); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.zst"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, ok := g.files[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// report prints what was built and how much compression saved.
func report(w io.Writer, g *generated) {
	for _, b := range g.manifest.Bundles {
		var total int64
		for _, r := range b.Binaries {
			fmt.Fprintf(w, "%-8s %-10s %9d bytes  sha256 %s\n", b.Arch, r.Program, r.Size, r.SHA256[:16])
			total += r.Size
		}
		fmt.Fprintf(w, "%-8s %-10s %9d bytes, %d compressed (%.0f%%): %s\n", b.Arch, "bundle", total, b.Size, 100*float64(b.Size)/float64(total), b.File)
	}
}

// compare lists how the committed files (in fsys, described by committed)
// differ from a fresh generation; nil when they match.
func compare(fsys fs.FS, committed, fresh *guestbin.Manifest) []string {
	var problems []string
	for _, fsrc := range fresh.Sources {
		cs, ok := committed.Source(fsrc.Program)
		switch {
		case !ok:
			problems = append(problems, fsrc.Program+": not embedded")
		case cs.Digest != fsrc.Digest:
			problems = append(problems, fmt.Sprintf("%s: its sources changed since the embedded copy was generated (digest %.12s, embedded %.12s)", fsrc.Program, fsrc.Digest, cs.Digest))
		case !slices.Equal(cs.Packages, fsrc.Packages) || !slices.Equal(cs.Modules, fsrc.Modules):
			problems = append(problems, fmt.Sprintf("%s: it is now built from packages %v and modules %v, the manifest says %v and %v", fsrc.Program, fsrc.Packages, fsrc.Modules, cs.Packages, cs.Modules))
		}
	}
	for _, fb := range fresh.Bundles {
		cb, ok := committed.Bundle(fb.Arch)
		if !ok {
			problems = append(problems, fb.Arch+": no embedded programs for this arch")
			continue
		}
		for _, fr := range fb.Binaries {
			cr, ok := cb.Record(fr.Program)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s %s: not embedded", fb.Arch, fr.Program))
				continue
			}
			if cr.SHA256 != fr.SHA256 || cr.Size != fr.Size || cr.Go != fr.Go {
				problems = append(problems, fmt.Sprintf("%s %s: a fresh build is %d bytes, sha256 %.16s (%s); the embedded one is %d bytes, sha256 %.16s (%s)",
					fb.Arch, fr.Program, fr.Size, fr.SHA256, fr.Go, cr.Size, cr.SHA256, cr.Go))
			}
			if _, _, err := guestbin.ReadBinary(fsys, committed, fr.Program, fb.Arch); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	for _, cb := range committed.Bundles {
		if _, ok := fresh.Bundle(cb.Arch); !ok {
			problems = append(problems, cb.Arch+": embedded, but no longer in boot/arch's table")
		}
	}
	return problems
}

// goEnv asks the go command for one setting, with env added.
func goEnv(ctx context.Context, env []string, name string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", name)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %v\n%s", name, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// moduleRoot is the root of the module the go command runs in.
func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := goEnv(ctx, nil, "GOMOD")
	if err != nil {
		return "", err
	}
	root := filepath.Dir(gomod)
	if gomod == "" || gomod == os.DevNull || !guestbin.IsCheckout(root) {
		return "", fmt.Errorf("run gen inside kitrun's module (go env GOMOD says %q)", gomod)
	}
	return root, nil
}
