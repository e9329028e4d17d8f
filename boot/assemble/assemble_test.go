package assemble_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/guestbin"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"

	"github.com/klauspost/compress/zstd"
)

func repo(t testing.TB, rel string) string { return filepath.Join(qemutest.RepoRoot(t), rel) }

func build(t testing.TB, specPath string, o assemble.Options) *assemble.Result {
	t.Helper()
	s, err := spec.Parse(specPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := assemble.Build(context.Background(), s, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// freshCache is an empty cache that shares only the downloaded kernels and
// boot loader packages and the unpacked kernel trees (downloading and
// unpacking are not what these tests are about).
func freshCache(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	shared := assemble.DefaultCacheDir()
	for _, d := range []string{"kernels", "kernel-trees", "packages"} {
		// On a fresh machine the shared cache has no unpacked trees yet: a
		// dangling link would make the kernel cache's MkdirAll fail.
		if err := os.MkdirAll(filepath.Join(shared, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(shared, d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReproducible builds the rich example twice from empty caches (so its
// Go programs are compiled twice) and requires identical bytes.
func TestReproducible(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	first := build(t, repo(t, "examples/rich.yml"), assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t)})
	second := build(t, repo(t, "examples/rich.yml"), assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t)})
	if first.Cached || second.Cached {
		t.Fatal("a fresh cache must not hit")
	}
	for _, f := range []string{image.InitrdFile, image.ManifestFile, image.CmdlineFile, image.KernelFile} {
		x, _ := os.ReadFile(filepath.Join(first.Image.Dir, f))
		y, _ := os.ReadFile(filepath.Join(second.Image.Dir, f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds of the same inputs (%d vs %d bytes)", f, len(x), len(y))
		}
	}
}

// TestManifestAccountsForEveryFile reads the initramfs back with the cpio
// reader and checks that the manifest lists exactly its files, with sizes,
// digests and origins.
func TestManifestAccountsForEveryFile(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	res := build(t, repo(t, "examples/rich.yml"), assemble.Options{Platform: qemutest.Platform(t, a)})
	m := res.Image.Manifest
	raw, err := os.ReadFile(res.Image.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := archive.ReadFrom(dec); err != nil {
		t.Fatal(err)
	}
	if int64(archive.Len()) != m.Initrd.UncompressedSize {
		t.Errorf("uncompressed size %d, manifest says %d", archive.Len(), m.Initrd.UncompressedSize)
	}
	inArchive := map[string]cpio.Record{}
	r := cpio.NewReader(&archive)
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		inArchive["/"+rec.Name] = rec
	}
	// kitrun's own programs are accounted for by name, digest and where
	// they came from (the copy embedded in kitrun, here, unless this
	// checkout's kitinit differs from it).
	if len(m.Guest) != 1 || m.Guest[0].Name != "kitinit" || m.Guest[0].Path != "/init" {
		t.Fatalf("manifest guest programs: %+v; want kitinit at /init", m.Guest)
	} else if g := m.Guest[0]; g.SHA256 != guestbin.Digest(inArchive["/init"].Data) || (g.From != guestbin.FromEmbedded && g.From != guestbin.FromSource) {
		t.Errorf("kitinit: manifest says %+v, the archive's /init has sha256 %s", g, guestbin.Digest(inArchive["/init"].Data))
	}
	origins := map[string]bool{}
	for _, e := range m.Files {
		rec, ok := inArchive[e.Path]
		if !ok {
			t.Errorf("manifest lists %s, the archive does not have it", e.Path)
			continue
		}
		delete(inArchive, e.Path)
		if e.Origin == "" {
			t.Errorf("%s has no origin", e.Path)
		}
		origins[strings.Fields(e.Origin)[0]] = true
		if e.Type == "file" && int64(len(rec.Data)) != e.Size {
			t.Errorf("%s: size %d, manifest says %d", e.Path, len(rec.Data), e.Size)
		}
	}
	for name := range inArchive {
		if name != "/" {
			t.Errorf("archive has %s, the manifest does not list it", name)
		}
	}
	for _, want := range []string{"kitinit", "kernel", "service", "onboot", "files[0]", "kitrun"} {
		if !origins[want] {
			t.Errorf("no manifest entry with origin %q (have %v)", want, origins)
		}
	}
	if m.Initrd.Size > 3<<20 {
		t.Errorf("initrd is %d bytes compressed; the budget is 3 MiB", m.Initrd.Size)
	}
}

// TestBuildErrors covers what only the assembler can know: module names,
// commands that nothing puts in the image.
func TestBuildErrors(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	cases := []struct{ name, yaml, want string }{
		{"unknown module", `
version: 1
kernel:
  package: linux-image-cloud
  modules: [virtio_nett]
`, `:5:13: unknown kernel module "virtio_nett"; did you mean virtio_net?`},
		{"command not in image", `
version: 1
kernel: {package: linux-image-cloud}
services:
  - name: app
    command: /usr/bin/nope
`, `:5:5: command "/usr/bin/nope" is not in the image`},
		{"command not executable", `
version: 1
kernel: {package: linux-image-cloud}
files:
  - {path: /usr/bin/app, contents: "x"}
services:
  - name: app
    command: /usr/bin/app
`, `:7:5: command "/usr/bin/app" is in the image but is not an executable file (mode 644)`},
		{"wrong arch binary", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud}
services:
  - name: app
    binary: %s
`, "/bin/true"), ""},
		{"missing kernel package", `
version: 1
kernel: {package: linux-image-nosuchflavour}
`, `no linux-image`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := qemutest.WriteSpec(t, "bad", c.yaml)
			s, err := spec.Parse(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = assemble.Build(context.Background(), s, t.TempDir(), assemble.Options{Platform: qemutest.Platform(t, a)})
			if c.want == "" {
				if err != nil {
					t.Fatalf("host binary for the host arch: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			var se *spec.Errors
			if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), p) {
				t.Errorf("error is not positioned in the spec file: %v", err)
			}
		})
	}
}

// TestSpecFormats: `format:` in a spec builds its disks; a format the arch
// cannot boot is an error at its position naming what would be valid.
func TestSpecFormats(t *testing.T) {
	for _, c := range []struct{ arch, format, want string }{
		{"x86_64", "iso-bios", ""},
		{"aarch64", "iso-bios", "formats for aarch64:"},
	} {
		a := qemutest.Require(t, c.arch)
		p := qemutest.WriteSpec(t, "fmt", "version: 1\nkernel: {package: linux-image-cloud}\nformat: "+c.format+"\n")
		s, err := spec.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := assemble.Build(context.Background(), s, t.TempDir(), assemble.Options{Platform: qemutest.Platform(t, a)})
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), p+":3:9:") {
				t.Errorf("%s on %s: %v, want an error at %s:3:9 with %q", c.format, c.arch, err, p, c.want)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Image.Disk(c.format); err != nil {
			t.Errorf("%s on %s: %v", c.format, c.arch, err)
		}
	}
}

// TestBuildCachedWithFormats: an image with disk formats goes into the image
// cache under the digest image.Load derives from its finished manifest, so a
// second build finds it (a mismatch once made every such build fail with
// "image cache entry … is damaged"), and other formats make another entry.
func TestBuildCachedWithFormats(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	s, err := spec.Parse(repo(t, "examples/minimal.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// vhdx is made from raw-efi, which the image then holds too.
	opts := assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t), Formats: []string{"iso-bios", "vhdx"}}
	first, err := assemble.BuildCached(context.Background(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := assemble.BuildCached(context.Background(), s, opts)
	if err != nil {
		t.Fatalf("second build of the same spec and formats: %v", err)
	}
	if again.Image.Dir != first.Image.Dir || again.Image.Digest != first.Image.Digest {
		t.Errorf("second build: %s (%s), want the cached %s (%s)", again.Image.Dir, again.Image.Digest, first.Image.Dir, first.Image.Digest)
	}
	for _, f := range []string{"iso-bios", "vhdx", "raw-efi"} {
		if _, err := again.Image.Disk(f); err != nil {
			t.Error(err)
		}
	}
	opts.Formats = nil
	plain, err := assemble.BuildCached(context.Background(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Image.Dir == first.Image.Dir || len(plain.Image.Manifest.Disks) != 0 {
		t.Errorf("build without formats reused %s (disks %v)", plain.Image.Dir, plain.Image.Manifest.Disks)
	}
	// A bundle is built with its base (aws: raw-efi and a manifest), and
	// the cache entry is named for both.
	opts.Formats = []string{"aws"}
	bundle, err := assemble.BuildCached(context.Background(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err = assemble.BuildCached(context.Background(), s, opts)
	if err != nil || again.Image.Dir != bundle.Image.Dir {
		t.Fatalf("second build with a bundle format: %v (%v, want %s)", err, again, bundle.Image.Dir)
	}
}

// TestHostBinaryForOtherArch: a host binary for the wrong arch is a build
// error, not a boot failure.
func TestHostBinaryForOtherArch(t *testing.T) {
	a := qemutest.Require(t, "aarch64")
	p := qemutest.WriteSpec(t, "wrongarch", "version: 1\nkernel: {package: linux-image-cloud}\nservices:\n  - name: app\n    binary: /bin/true\n")
	s, err := spec.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = assemble.Build(context.Background(), s, t.TempDir(), assemble.Options{Platform: qemutest.Platform(t, a)})
	if err == nil || !strings.Contains(err.Error(), "not aarch64") {
		t.Fatalf("got %v, want an arch mismatch", err)
	}
}

// BenchmarkRebuildUnchanged is the cost of `kitrun build` on a spec that
// did not change (the budget is 0.5 s).
func BenchmarkRebuildUnchanged(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	p := repo(b, "examples/minimal.yml")
	s, err := spec.Parse(p)
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	if _, err := assemble.Build(context.Background(), s, out, assemble.Options{Platform: qemutest.Platform(b, a)}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := spec.Parse(p)
		if err != nil {
			b.Fatal(err)
		}
		res, err := assemble.Build(context.Background(), s, out, assemble.Options{Platform: qemutest.Platform(b, a)})
		if err != nil || !res.Cached {
			b.Fatalf("rebuild: cached=%v err=%v", res != nil && res.Cached, err)
		}
	}
}

// BenchmarkColdBuild builds examples/minimal.yml from an empty cache
// (kernel unpacking excluded): Go builds, module index, packing, zstd.
func BenchmarkColdBuild(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	p := repo(b, "examples/minimal.yml")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cache := freshCache(b)
		s, err := spec.Parse(p)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := assemble.Build(context.Background(), s, b.TempDir(), assemble.Options{Platform: qemutest.Platform(b, a), CacheDir: cache}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRebuildCachedUnchanged is the cost of `kitrun run SPEC` building
// a spec that did not change: the image cache already has it, so nothing is
// written.
func BenchmarkRebuildCachedUnchanged(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	p := repo(b, "examples/minimal.yml")
	for i := 0; i <= b.N; i++ {
		if i == 1 {
			b.ResetTimer()
		}
		s, err := spec.Parse(p)
		if err != nil {
			b.Fatal(err)
		}
		res, err := assemble.BuildCached(context.Background(), s, assemble.Options{Platform: qemutest.Platform(b, a)})
		if err != nil {
			b.Fatal(err)
		}
		if i > 0 && !res.Cached {
			b.Fatal("rebuild missed the cache")
		}
	}
}
