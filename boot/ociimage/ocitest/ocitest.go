// Package ocitest builds OCI images for tests without a container engine
// or the internet: layers from in-memory files or from Go programs built
// for an arch, multi-arch indexes, and an in-process registry to serve
// them (go-containerregistry's registry package).
package ocitest

import (
	"archive/tar"
	"bytes"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is a file of a test layer. Type is a tar type flag ('0' regular
// when zero); Name is relative ("usr/bin/x", ".wh.y").
type Entry struct {
	Name     string
	Type     byte
	Mode     int64
	Data     []byte
	Linkname string
}

// Layer makes an uncompressed-tar layer (gzip-compressed by the library).
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Linkname: e.Linkname, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(e.Data)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (ioReadCloser, error) { return nopCloser{bytes.NewReader(b)}, nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image makes a linux/goarch image of layers with cfg as its run
// configuration.
func Image(t testing.TB, goarch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", goarch, cfg
	if goarch == "arm64" {
		cf.Variant = "v8"
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// GoProgram builds the Go package dir for linux/goarch (CGO off) and
// returns the executable.
func GoProgram(t testing.TB, dir, goarch string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "prog")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s for %s: %v\n%s", dir, goarch, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ProgramImage is an image holding the Go package dir built for goarch at
// /usr/bin/<name>, which is its entrypoint.
func ProgramImage(t testing.TB, dir, goarch, name string, extra ...Entry) v1.Image {
	t.Helper()
	entries := append([]Entry{
		{Name: "usr/", Type: tar.TypeDir},
		{Name: "usr/bin/", Type: tar.TypeDir},
		{Name: "usr/bin/" + name, Mode: 0o755, Data: GoProgram(t, dir, goarch)},
	}, extra...)
	return Image(t, goarch, v1.Config{Entrypoint: []string{"/usr/bin/" + name}, Env: []string{"PATH=/usr/bin"}}, Layer(t, entries...))
}

// Index is a multi-arch index of images, each described with its own
// config's platform.
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// Registry serves an in-process registry on 127.0.0.1 until the test
// ends; it returns the "127.0.0.1:PORT" host and the server (to close it
// early, making the registry unreachable).
func Registry(t testing.TB) (string, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(discard())))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), srv
}

// Push writes an image or index to ref in a registry from Registry.
func Push(t testing.TB, ref string, x any) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	switch v := x.(type) {
	case v1.Image:
		err = remote.Write(r, v)
	case v1.ImageIndex:
		err = remote.WriteIndex(r, v)
	default:
		t.Fatalf("Push: %T is not an image or index", x)
	}
	if err != nil {
		t.Fatal(err)
	}
}
