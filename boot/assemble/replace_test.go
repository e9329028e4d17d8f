package assemble_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// smallSpec is an image with nothing to compile but kitinit (cached after
// the first build of any test).
func smallSpec(t testing.TB, name, marker string) *spec.Spec {
	t.Helper()
	p := qemutest.WriteSpec(t, name, "version: 1\nname: "+name+"\nkernel: {package: linux-image-cloud}\nfiles:\n  - path: /etc/marker\n    contents: "+marker+"\n")
	s, err := spec.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot is every path under dir with its content ("/" for directories,
// "-> target" for links), to show that a refused build touched nothing.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		case info.IsDir():
			out[rel] = "/"
		default:
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		}
		return nil
	})
	return out
}

// TestBuildNeverReplacesUserData: `kitrun build -o DIR` replaces DIR/<name>
// only when it is an image kitrun wrote; anything else is an error naming
// the path, and stays as it was.
func TestBuildNeverReplacesUserData(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	s := smallSpec(t, "web", "one")
	webManifest := `{"name": "My web app", "short_name": "web", "start_url": "/", "display": "standalone", "version": 1}`
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dest string)
		why   string
	}{
		{"a regular file", func(t *testing.T, dest string) {
			os.WriteFile(dest, []byte("my notes\n"), 0o644)
		}, "is a file"},
		{"a web project's manifest.json", func(t *testing.T, dest string) {
			os.MkdirAll(filepath.Join(dest, "src"), 0o755)
			os.WriteFile(filepath.Join(dest, "manifest.json"), []byte(webManifest), 0o644)
			os.WriteFile(filepath.Join(dest, "index.html"), []byte("<html></html>"), 0o644)
			os.WriteFile(filepath.Join(dest, "src", "app.js"), []byte("main()"), 0o644)
		}, "not a kitrun image manifest"},
		{"a manifest.json only, not kitrun's", func(t *testing.T, dest string) {
			os.MkdirAll(dest, 0o755)
			os.WriteFile(filepath.Join(dest, "manifest.json"), []byte(webManifest), 0o644)
		}, "not a kitrun image manifest"},
		{"files kitrun's names but no manifest", func(t *testing.T, dest string) {
			os.MkdirAll(dest, 0o755)
			os.WriteFile(filepath.Join(dest, "kernel"), []byte("my own kernel"), 0o644)
		}, "holds no kitrun manifest.json"},
		{"a kitrun image with a user's file added", func(t *testing.T, dest string) {
			if _, err := assemble.Build(context.Background(), s, filepath.Dir(dest), assemble.Options{Platform: qemutest.Platform(t, a)}); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dest, "notes.txt"), []byte("mine"), 0o644)
		}, "files kitrun did not write (notes.txt)"},
		{"a kitrun image with a user's directory added", func(t *testing.T, dest string) {
			if _, err := assemble.Build(context.Background(), s, filepath.Dir(dest), assemble.Options{Platform: qemutest.Platform(t, a)}); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(dest, "keep"), 0o755)
			os.WriteFile(filepath.Join(dest, "keep", "data"), []byte("mine"), 0o644)
		}, "files kitrun did not write (keep/)"},
		{"a symbolic link to a directory", func(t *testing.T, dest string) {
			target := t.TempDir()
			os.WriteFile(filepath.Join(target, "data"), []byte("mine"), 0o644)
			os.Symlink(target, dest)
		}, "is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			dest := filepath.Join(out, s.Name)
			tc.setup(t, dest)
			before := snapshot(t, out)
			_, err := assemble.Build(context.Background(), s, out, assemble.Options{Platform: qemutest.Platform(t, a)})
			var ne *image.NotOursError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), dest) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Build = %v; want a NotOursError naming %s and saying %q", err, dest, tc.why)
			}
			if !strings.Contains(err.Error(), "-o") {
				t.Errorf("the error does not say what to do: %v", err)
			}
			if after := snapshot(t, out); !equalMaps(before, after) {
				t.Errorf("a refused build changed %s:\nbefore %v\nafter  %v", out, keys(before), keys(after))
			}
		})
	}
}

// TestBuildReplacesItsOwnImage: what kitrun wrote is replaced: its own image
// (also one with a disk image of a registered format and a temporary file
// a killed build left), one from before manifests had a kind, and an empty
// directory.
func TestBuildReplacesItsOwnImage(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	image.RegisterFile("test-disk.raw")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, out, dest string)
	}{
		{"empty directory", func(t *testing.T, out, dest string) { os.MkdirAll(dest, 0o755) }},
		{"its own image", func(t *testing.T, out, dest string) {
			build1(t, smallSpec(t, "web", "old"), out, a)
		}},
		{"with a disk image and a leftover temporary file", func(t *testing.T, out, dest string) {
			build1(t, smallSpec(t, "web", "old"), out, a)
			os.WriteFile(filepath.Join(dest, "test-disk.raw"), []byte("disk"), 0o644)
			os.WriteFile(filepath.Join(dest, ".initrd.img.tmp-99999999-1"), []byte("half"), 0o644)
		}},
		{"an image from before the manifest kind", func(t *testing.T, out, dest string) {
			build1(t, smallSpec(t, "web", "old"), out, a)
			p := filepath.Join(dest, image.ManifestFile)
			b, _ := os.ReadFile(p)
			legacy := strings.Replace(string(b), `"kind": "kitrun-image",`, "", 1)
			if legacy == string(b) {
				t.Fatalf("manifest has no kind: %s", b[:200])
			}
			os.WriteFile(p, []byte(legacy), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			dest := filepath.Join(out, "web")
			tc.setup(t, out, dest)
			res := build1(t, smallSpec(t, "web", "new"), out, a)
			if res.Image.Dir != dest {
				t.Fatalf("image in %s, want %s", res.Image.Dir, dest)
			}
			got, _ := os.ReadDir(dest)
			var names []string
			for _, e := range got {
				names = append(names, e.Name())
			}
			want := []string{image.CmdlineFile, image.InitrdFile, image.KernelFile, image.ManifestFile}
			sort.Strings(want)
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("%s holds %v, want %v", dest, names, want)
			}
			if e := findEntry(res.Image.Manifest, "/etc/marker"); e == nil || e.Size != int64(len("new")) {
				t.Errorf("the new image is not in place: %+v", e)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 1 {
				t.Errorf("%s holds %v, want the image only", out, ents)
			}
		})
	}
}

func build1(t *testing.T, s *spec.Spec, out string, a arch.Arch) *assemble.Result {
	t.Helper()
	res, err := assemble.Build(context.Background(), s, out, assemble.Options{Platform: qemutest.Platform(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func findEntry(m image.Manifest, path string) *image.Entry {
	for i := range m.Files {
		if m.Files[i].Path == path {
			return &m.Files[i]
		}
	}
	return nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestUnchangedRebuildWritesNothing: building the same spec into the same
// directory leaves the image as it is (and the disk images beside it), but a
// damaged initramfs is written again.
func TestUnchangedRebuildWritesNothing(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	image.RegisterFile("test-disk.raw")
	out := t.TempDir()
	first := build1(t, smallSpec(t, "web", "same"), out, a)
	disk := filepath.Join(first.Image.Dir, "test-disk.raw")
	os.WriteFile(disk, []byte("disk"), 0o644)
	before, _ := os.Stat(first.Image.Initrd)
	build1(t, smallSpec(t, "web", "same"), out, a)
	after, _ := os.Stat(first.Image.Initrd)
	if !os.SameFile(before, after) {
		t.Error("an unchanged rebuild rewrote initrd.img")
	}
	if _, err := os.Stat(disk); err != nil {
		t.Errorf("an unchanged rebuild dropped the disk image: %v", err)
	}
	b, _ := os.ReadFile(first.Image.Initrd)
	b[len(b)/2] ^= 0xff
	os.WriteFile(first.Image.Initrd, b, 0o644)
	res := build1(t, smallSpec(t, "web", "same"), out, a)
	if got, _ := os.ReadFile(res.Image.Initrd); bytes.Equal(got, b) {
		t.Error("a damaged initrd.img was kept")
	}
}
