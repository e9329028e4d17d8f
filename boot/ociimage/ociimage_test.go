package ociimage_test

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kitrun/kitrun/boot/ociimage"
	"github.com/kitrun/kitrun/boot/ociimage/ocitest"
)

var (
	amd64 = ociimage.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ociimage.Platform{OS: "linux", Architecture: "arm64"}
)

// programs builds the hello program once per arch for all tests.
var (
	progMu    sync.Mutex
	progCache = map[string]v1.Image{}
)

func programImage(t *testing.T, goarch string) v1.Image {
	progMu.Lock()
	defer progMu.Unlock()
	if img, ok := progCache[goarch]; ok {
		return img
	}
	img := ocitest.ProgramImage(t, "testdata/hello", goarch, "hello")
	progCache[goarch] = img
	return img
}

func digest(t *testing.T, x interface{ Digest() (v1.Hash, error) }) string {
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func find(img *ociimage.Image, p string) *ociimage.File {
	for i := range img.Files {
		if img.Files[i].Path == p {
			return &img.Files[i]
		}
	}
	return nil
}

func pull(t *testing.T, src string, plat ociimage.Platform, opts ociimage.Options) (*ociimage.Image, error) {
	t.Helper()
	s, err := ociimage.ParseSource(src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ociimage.Pull(context.Background(), s, plat, opts)
}

func TestRegistryMultiArch(t *testing.T) {
	host, srv := ocitest.Registry(t)
	a, b := programImage(t, "amd64"), programImage(t, "arm64")
	idx := ocitest.Index(t, a, b)
	ocitest.Push(t, host+"/acme/hello:1", idx)
	cache := t.TempDir()
	for _, c := range []struct {
		plat ociimage.Platform
		img  v1.Image
	}{{amd64, a}, {arm64, b}} {
		img, err := pull(t, host+"/acme/hello:1", c.plat, ociimage.Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		if img.Digest != digest(t, c.img) || img.IndexDigest != digest(t, idx) {
			t.Errorf("%s: digest %s (index %s), want %s (index %s)", c.plat, img.Digest, img.IndexDigest, digest(t, c.img), digest(t, idx))
		}
		f := find(img, "/usr/bin/hello")
		if f == nil || f.Mode != 0o755 || len(f.Data) < 1000 {
			t.Fatalf("%s: /usr/bin/hello missing or wrong: %+v", c.plat, f)
		}
		if got := img.Config.Entrypoint; len(got) != 1 || got[0] != "/usr/bin/hello" {
			t.Errorf("entrypoint %q", got)
		}
	}
	// Offline: the cache alone serves the pull once the registry is gone.
	srv.Close()
	img, err := pull(t, host+"/acme/hello:1", arm64, ociimage.Options{CacheDir: cache, Offline: true})
	if err != nil {
		t.Fatalf("offline pull: %v", err)
	}
	if img.Digest != digest(t, b) {
		t.Errorf("offline digest %s, want %s", img.Digest, digest(t, b))
	}
	if _, err := pull(t, host+"/acme/hello:1", arm64, ociimage.Options{CacheDir: t.TempDir(), Offline: true}); err == nil || !strings.Contains(err.Error(), "--offline") {
		t.Errorf("offline pull with an empty cache: %v", err)
	}
	if _, err := pull(t, host+"/acme/hello:1", arm64, ociimage.Options{CacheDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "registry unreachable") {
		t.Errorf("pull from a closed registry: %v", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	host, _ := ocitest.Registry(t)
	ocitest.Push(t, host+"/acme/only-amd64:1", ocitest.Index(t, programImage(t, "amd64")))
	ocitest.Push(t, host+"/acme/single:1", programImage(t, "amd64"))
	cache := t.TempDir()
	for _, c := range []struct {
		ref  string
		plat ociimage.Platform
		want string
	}{
		{host + "/acme/nothere:1", amd64, "unknown image"},
		{host + "/acme/only-amd64:nosuchtag", amd64, "unknown image"},
		{host + "/acme/only-amd64:1", arm64, "wrong architecture: the index has no linux/arm64 image (it has linux/amd64)"},
		{host + "/acme/single:1", arm64, "wrong architecture: the image is linux/amd64, the target is linux/arm64"},
	} {
		_, err := pull(t, c.ref, c.plat, ociimage.Options{CacheDir: cache})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s for %s: error %v, want %q", c.ref, c.plat, err, c.want)
		}
	}
}

func TestWhiteouts(t *testing.T) {
	l1 := ocitest.Layer(t,
		ocitest.Entry{Name: "a/", Type: tar.TypeDir},
		ocitest.Entry{Name: "a/x", Data: []byte("x")},
		ocitest.Entry{Name: "a/y", Data: []byte("y")},
		ocitest.Entry{Name: "b/", Type: tar.TypeDir},
		ocitest.Entry{Name: "b/old", Data: []byte("old")},
		ocitest.Entry{Name: "b/sub/", Type: tar.TypeDir},
		ocitest.Entry{Name: "b/sub/deep", Data: []byte("deep")},
		ocitest.Entry{Name: "c/", Type: tar.TypeDir},
		ocitest.Entry{Name: "c/d", Data: []byte("d")},
		ocitest.Entry{Name: "e", Data: []byte("file")},
		ocitest.Entry{Name: "s", Mode: 0o4755, Data: []byte("setuid")},
	)
	l2 := ocitest.Layer(t,
		ocitest.Entry{Name: "a/.wh.x"},
		ocitest.Entry{Name: "b/.wh..wh..opq"},
		ocitest.Entry{Name: "b/new", Data: []byte("new")},
		ocitest.Entry{Name: ".wh.c"},
		ocitest.Entry{Name: "e/", Type: tar.TypeDir},
		ocitest.Entry{Name: "e/inside", Data: []byte("now a dir")},
		ocitest.Entry{Name: "link", Type: tar.TypeSymlink, Linkname: "a/y"},
		ocitest.Entry{Name: "hard", Type: tar.TypeLink, Linkname: "a/y"},
	)
	img := ocitest.Image(t, "amd64", v1.Config{Cmd: []string{"/s"}}, l1, l2)
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(archive, nil, img); err != nil {
		t.Fatal(err)
	}
	got, err := pull(t, "docker-archive:"+archive, amd64, ociimage.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range got.Files {
		paths = append(paths, f.Path)
	}
	want := "/a /a/y /b /b/new /e /e/inside /hard /link /s"
	if strings.Join(paths, " ") != want {
		t.Errorf("flattened tree:\n got %s\nwant %s", strings.Join(paths, " "), want)
	}
	if f := find(got, "/hard"); f == nil || string(f.Data) != "y" {
		t.Errorf("hard link: %+v", f)
	}
	if f := find(got, "/s"); f == nil || f.Mode != 0o4755 {
		t.Errorf("setuid file: %+v", f)
	}
	if got.Digest != digest(t, img) {
		t.Errorf("digest %s, want %s", got.Digest, digest(t, img))
	}
}

func TestOCILayout(t *testing.T) {
	dir := t.TempDir()
	a, b := programImage(t, "amd64"), programImage(t, "arm64")
	idx := ocitest.Index(t, a, b)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	img, err := pull(t, "oci-layout:"+dir, arm64, ociimage.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != digest(t, b) {
		t.Errorf("digest %s, want arm64's %s", img.Digest, digest(t, b))
	}
	if _, err := pull(t, "oci-layout:"+dir+"@sha256:0000000000000000000000000000000000000000000000000000000000000000", arm64, ociimage.Options{CacheDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "unknown image") {
		t.Errorf("unknown digest: %v", err)
	}

	// A layer blob altered in the layout: its digest no longer matches.
	ls, _ := b.Layers()
	h, _ := ls[0].Digest()
	blob := filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	os.WriteFile(blob, data, 0o644)
	if _, err := pull(t, "oci-layout:"+dir, arm64, ociimage.Options{CacheDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "digest mismatch: layer "+h.String()) {
		t.Errorf("altered layer: %v", err)
	}
}

func TestCorruptLayer(t *testing.T) {
	// The config's diff id disagrees with the layer's content: the blob
	// is intact (its digest matches) but is not the layer the image says.
	img := programImage(t, "amd64")
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	bad, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "bad.tar")
	if err := tarball.WriteToFile(archive, nil, bad); err != nil {
		t.Fatal(err)
	}
	_, err = pull(t, "docker-archive:"+archive, amd64, ociimage.Options{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "corrupt layer") {
		t.Errorf("corrupt layer: %v", err)
	}
}

func TestParseSource(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"registry.example.com/acme/web:1.0", ""},
		{"docker-archive:", "has no file"},
		{"oci-layout:./x@", "empty tag"},
		{"registry.example.com/acme/web", "has no tag or digest"},
		{"Not A Ref", "is not a valid image reference"},
	} {
		_, err := ociimage.ParseSource(c.in, "/base")
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
	s, _ := ociimage.ParseSource("docker-archive:web.tar", "/base")
	if s.Path != "/base/web.tar" {
		t.Errorf("relative archive path: %q", s.Path)
	}
}
