// Package ocitest serves OCI images to tests without a container engine
// or the internet: ocibuild's builders that fail the test on error, and
// an in-process registry (go-containerregistry's registry package).
package ocitest

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kitrun/kitrun/boot/ociimage/ocibuild"
)

// Entry is a file of a test layer (see ocibuild.Entry).
type Entry = ocibuild.Entry

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Layer makes a layer of entries.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	return must[v1.Layer](t)(ocibuild.Layer(entries...))
}

// Image makes a linux/goarch image of layers.
func Image(t testing.TB, goarch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	return must[v1.Image](t)(ocibuild.Image(goarch, cfg, layers...))
}

// ProgramImage is an image of the Go package dir built for goarch at
// /usr/bin/<name>, its entrypoint.
func ProgramImage(t testing.TB, dir, goarch, name string, extra ...Entry) v1.Image {
	t.Helper()
	return must[v1.Image](t)(ocibuild.ProgramImage(dir, goarch, name, extra...))
}

// Index is a multi-arch index of imgs.
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	return must[v1.ImageIndex](t)(ocibuild.Index(imgs...))
}

// Registry serves an in-process registry on 127.0.0.1 until the test
// ends; it returns the "127.0.0.1:PORT" host and the server (to close it
// early, making the registry unreachable).
func Registry(t testing.TB) (string, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
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
