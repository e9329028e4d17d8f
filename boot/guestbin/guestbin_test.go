package guestbin_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/guestbin"
)

// elfMachine is what each GOARCH's ELF header says, checked against the
// embedded bytes: an arch row without its own entry here fails the test,
// which is the reminder to add it.
var elfMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"riscv64": elf.EM_RISCV,
	"s390x":   elf.EM_S390,
	"ppc64le": elf.EM_PPC64,
}

// TestEmbeddedForEveryArch checks that kitrun carries every guest program
// for every arch of the table, intact (size and sha256 as the manifest
// says), as a static ELF executable for that arch.
func TestEmbeddedForEveryArch(t *testing.T) {
	for _, a := range arch.All() {
		for _, p := range guestbin.Programs {
			bin, err := guestbin.EmbeddedBinary(p.Name, a)
			if err != nil {
				t.Errorf("%s %s: %v", a.Name, p.Name, err)
				continue
			}
			if bin.From != guestbin.FromEmbedded || bin.SHA256 != guestbin.Digest(bin.Data) {
				t.Errorf("%s %s: from %q, sha256 %s of data %s", a.Name, p.Name, bin.From, bin.SHA256, guestbin.Digest(bin.Data))
			}
			f, err := elf.NewFile(bytes.NewReader(bin.Data))
			if err != nil {
				t.Errorf("%s %s: not ELF: %v", a.Name, p.Name, err)
				continue
			}
			want, ok := elfMachine[a.GOARCH]
			if !ok {
				t.Errorf("no ELF machine known for GOARCH %s: add it to elfMachine", a.GOARCH)
			}
			if f.Machine != want || f.Type != elf.ET_EXEC {
				t.Errorf("%s %s: ELF %v %v, want %v executable", a.Name, p.Name, f.Machine, f.Type, want)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s %s has an interpreter: it must be static", a.Name, p.Name)
				}
			}
		}
	}
}

// TestEmbeddedSourcesCurrent is the cheap half of the CI check (the other
// rebuilds: see gen's tests and `make check-generated`): the sources in
// this checkout must be those the embedded programs were built from.
func TestEmbeddedSourcesCurrent(t *testing.T) {
	root := repoRoot(t)
	m, err := guestbin.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range guestbin.Programs {
		src, ok := m.Source(p.Name)
		if !ok {
			t.Errorf("%s: not in the embedded manifest; run `make generate`", p.Name)
			continue
		}
		d, err := guestbin.SourceDigest(root, src)
		if err != nil {
			t.Fatal(err)
		}
		if d != src.Digest {
			t.Errorf("%s: its sources changed since the embedded copy was generated; run `make generate` and commit boot/guestbin/embedded", p.Name)
		}
		for _, b := range m.Bundles {
			if r, ok := b.Record(p.Name); ok && r.SourceDigest != src.Digest {
				t.Errorf("%s %s: built from sources %.12s, the program's are %.12s; run `make generate`", b.Arch, p.Name, r.SourceDigest, src.Digest)
			}
		}
	}
}

// TestGetFromCheckout runs Get against a checkout holding kitinit's sources:
// as they are, it takes the embedded copy; edited, it builds from them and
// says so; and since -trimpath builds do not depend on where the checkout
// is, a source build of code equal to the embedded copy's gives its bytes.
func TestGetFromCheckout(t *testing.T) {
	goTool(t)
	ctx := context.Background()
	a, err := arch.Lookup("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := guestbin.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := m.Source(guestbin.Kitinit)
	checkout := copyCheckout(t, repoRoot(t), src)
	cache := t.TempDir()

	bin, err := guestbin.Get(ctx, guestbin.Kitinit, a, guestbin.Options{Checkout: checkout, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if bin.From != guestbin.FromEmbedded {
		t.Fatalf("unchanged sources: got kitinit from %s (%s), want the embedded copy", bin.From, bin.Checkout)
	}
	embedded := bin.SHA256

	// A comment changes the sources, not the program.
	doc := filepath.Join(checkout, "boot", "kitinit", "doc.go")
	appendFile(t, doc, "\n// An edit by TestGetFromCheckout.\n")
	bin, err = guestbin.Get(ctx, guestbin.Kitinit, a, guestbin.Options{Checkout: checkout, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if bin.From != guestbin.FromSource || bin.Checkout != checkout {
		t.Fatalf("edited sources: got kitinit from %s (%q), want a build from %s", bin.From, bin.Checkout, checkout)
	}
	if f, err := elf.NewFile(bytes.NewReader(bin.Data)); err != nil || f.Machine != elf.EM_X86_64 {
		t.Fatalf("source build is not an x86-64 ELF: %v", err)
	}
	rec, _ := mustBundle(t, m, a.Name).Record(guestbin.Kitinit)
	if goVersion(t) == rec.Go && bin.SHA256 != embedded {
		t.Errorf("kitinit built from the same code with the same %s is %s, the embedded copy %s: the build is not reproducible", rec.Go, bin.SHA256, embedded)
	}

	// kitsshd's sources are not in this checkout at all: it is built from
	// there, and that fails with the reason.
	_, err = guestbin.Get(ctx, guestbin.Kitsshd, a, guestbin.Options{Checkout: checkout, CacheDir: cache})
	if err == nil || !strings.Contains(err.Error(), "kitsshd") || !strings.Contains(err.Error(), checkout) {
		t.Errorf("kitsshd from a checkout without its sources: got %v, want an error naming kitsshd and the checkout", err)
	}
}

func TestFindCheckout(t *testing.T) {
	t.Setenv("KITRUN_SRC", "")
	notCheckout := t.TempDir()
	if _, err := guestbin.FindCheckout(notCheckout); err == nil || !strings.Contains(err.Error(), "not a kitrun checkout") {
		t.Errorf("explicit non-checkout: got %v", err)
	}
	t.Setenv("KITRUN_SRC", notCheckout)
	if _, err := guestbin.FindCheckout(""); err == nil || !strings.Contains(err.Error(), "$KITRUN_SRC") {
		t.Errorf("$KITRUN_SRC not a checkout: got %v", err)
	}
	root := repoRoot(t)
	t.Setenv("KITRUN_SRC", root)
	if got, err := guestbin.FindCheckout(""); err != nil || got != root {
		t.Errorf("$KITRUN_SRC=%s: got %q, %v", root, got, err)
	}
	// A test binary is not built with -trimpath: it knows where it was
	// compiled, and that is this checkout.
	t.Setenv("KITRUN_SRC", "")
	if got, err := guestbin.FindCheckout(""); err != nil || got != root {
		t.Errorf("compiled-in checkout: got %q, %v; want %s", got, err, root)
	}
}

// TestSourceDigest checks what counts as a change of a program's sources:
// its package files and the versions of the modules it uses, but not
// tests, nor other modules' requirements.
func TestSourceDigest(t *testing.T) {
	m, err := guestbin.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := m.Source(guestbin.Kitinit)
	checkout := copyCheckout(t, repoRoot(t), src)
	digest := func() string {
		t.Helper()
		d, err := guestbin.SourceDigest(checkout, src)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := digest()
	if base != src.Digest {
		t.Fatalf("a copy of the sources digests to %.12s, the manifest says %.12s", base, src.Digest)
	}
	gomod := filepath.Join(checkout, "go.mod")
	orig, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	same := []struct {
		what string
		edit func()
	}{
		{"a new test file", func() { writeFile(t, filepath.Join(checkout, "boot/kitinit/extra_test.go"), "package kitinit\n") }},
		{"a module kitinit does not use", func() { writeFile(t, gomod, string(orig)+"\nrequire example.com/unrelated v1.0.0\n") }},
	}
	for _, c := range same {
		c.edit()
		if d := digest(); d != base {
			t.Errorf("%s changed the digest", c.what)
		}
	}
	writeFile(t, gomod, string(orig))
	changed := []struct {
		what string
		edit func()
	}{
		{"another x/sys version", func() {
			writeFile(t, gomod, strings.Replace(string(orig), "golang.org/x/sys v0.", "golang.org/x/sys v0.9", 1))
		}},
		{"a replace of x/sys", func() { writeFile(t, gomod, string(orig)+"\nreplace golang.org/x/sys => ../sys\n") }},
		{"another go directive", func() { writeFile(t, gomod, strings.Replace(string(orig), "\ngo 1.", "\ngo 9.", 1)) }},
		{"a new source file", func() { writeFile(t, filepath.Join(checkout, "boot/kitinit/extra.go"), "package kitinit\n") }},
		{"an edited source file", func() { appendFile(t, filepath.Join(checkout, "boot/initproto/initproto.go"), "\n") }},
		{"a removed package", func() { os.RemoveAll(filepath.Join(checkout, "boot/initproto")) }},
	}
	prev := base
	for _, c := range changed {
		c.edit()
		d := digest()
		if d == prev {
			t.Errorf("%s did not change the digest", c.what)
		}
		prev = d
		writeFile(t, gomod, string(orig))
	}
	bad := src
	bad.Packages = append([]string{"../outside"}, src.Packages...)
	if _, err := guestbin.SourceDigest(checkout, bad); err == nil {
		t.Error("a package directory outside the module was accepted")
	}
}

// TestReadBinaryRejectsDamage feeds ReadBinary damaged generated files:
// each is a clear error, never a panic or wrong bytes.
func TestReadBinaryRejectsDamage(t *testing.T) {
	m, err := guestbin.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	real := guestbin.EmbeddedFS()
	b := m.Bundles[0]
	good, err := fs.ReadFile(real, guestbin.Dir+"/"+b.File)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/10] ^= 0xff // inside kitinit, the first program
	clone := func(edit func(*guestbin.Manifest)) *guestbin.Manifest {
		var c guestbin.Manifest
		j, _ := json.Marshal(m)
		json.Unmarshal(j, &c)
		edit(&c)
		return &c
	}
	cases := []struct {
		name string
		data []byte
		m    *guestbin.Manifest
		want string
	}{
		{"flipped byte", flipped, m, "embedded kitinit"},
		{"truncated", good[:len(good)/5], m, b.File},
		{"not zstd", []byte("hello"), m, b.File},
		{"offset outside", good, clone(func(c *guestbin.Manifest) { c.Bundles[0].Binaries[0].Offset = 1 << 40 }), "outside"},
		{"negative size", good, clone(func(c *guestbin.Manifest) { c.Bundles[0].Binaries[0].Size = -1 }), "outside"},
		{"wrong digest", good, clone(func(c *guestbin.Manifest) { c.Bundles[0].Binaries[0].SHA256 = strings.Repeat("0", 64) }), "sha256"},
	}
	for _, c := range cases {
		fsys := fstest.MapFS{guestbin.Dir + "/" + b.File: {Data: c.data}}
		_, _, err := guestbin.ReadBinary(fsys, c.m, b.Binaries[0].Program, b.Arch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	if _, _, err := guestbin.ReadBinary(real, m, guestbin.Kitinit, "pdp11"); err == nil || !strings.Contains(err.Error(), "make generate") {
		t.Errorf("unknown arch: got %v", err)
	}
	if _, err := guestbin.ReadManifest(fstest.MapFS{guestbin.Dir + "/" + guestbin.ManifestFile: {Data: []byte(`{"version": 7}`)}}); err == nil {
		t.Error("a manifest of another version was accepted")
	}
}

// BenchmarkEmbeddedKitinit measures what taking kitinit out of kitrun costs
// each image build: decompressing the bundle up to it and checking it.
func BenchmarkEmbeddedKitinit(b *testing.B) {
	a := arch.Host()
	for b.Loop() {
		bin, err := guestbin.EmbeddedBinary(guestbin.Kitinit, a)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(bin.Data)))
	}
}

// copyCheckout copies what src is built from (go.mod, go.sum and its
// package directories, without subdirectories) into a new checkout.
func copyCheckout(t *testing.T, root string, src guestbin.Source) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(dst, f))
	}
	for _, dir := range src.Packages {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				copyFile(t, filepath.Join(root, dir, e.Name()), filepath.Join(dst, dir, e.Name()))
			}
		}
	}
	return dst
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, string(data)+s)
}

func mustBundle(t *testing.T, m *guestbin.Manifest, archName string) guestbin.Bundle {
	t.Helper()
	b, ok := m.Bundle(archName)
	if !ok {
		t.Fatalf("no bundle for %s", archName)
	}
	return b
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if !guestbin.IsCheckout(root) {
		t.Fatalf("%s is not kitrun's checkout", root)
	}
	return root
}

func goTool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("building from source needs the Go toolchain:", err)
	}
}

func goVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestKitinitLeavesOutHostCode: under TCG every function the guest runs
// for the first time is translated before it runs, so kitinit reads and
// writes its protocol with initproto's small codec and leaves the host's
// encoding/json out (0.33 MB on x86_64, and a slower start). The
// package's init stays (initproto imports it for the host); its decoder
// and encoder must not be linked in.
func TestKitinitLeavesOutHostCode(t *testing.T) {
	goTool(t)
	if testing.Short() {
		t.Skip("builds kitinit")
	}
	out := filepath.Join(t.TempDir(), "kitinit")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./boot/kitinit/cmd/kitinit")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	banned := []string{"encoding/json.Unmarshal", "encoding/json.Marshal", "encoding/json.(*decodeState).value", "encoding/json.(*encodeState).marshal"}
	found := 0
	for _, s := range syms {
		for _, b := range banned {
			if s.Name == b {
				t.Errorf("kitinit links %s: something the guest runs reaches encoding/json (go build -ldflags=-dumpdep shows what)", b)
			}
		}
		if s.Name == "github.com/kitrun/kitrun/boot/initproto.ParseConfig" {
			found++
		}
	}
	if found == 0 {
		t.Error("no initproto.ParseConfig among kitinit's symbols: the check reads the wrong binary")
	}
}
