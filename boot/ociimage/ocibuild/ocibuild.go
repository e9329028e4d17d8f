// Package ocibuild makes small OCI images without a container engine:
// layers from in-memory files or from Go programs built for an arch,
// single-arch images and multi-arch indexes, written as OCI layouts or
// docker archives. kitrun's tests and its shipped test cases' images use
// it; it is not a general image builder.
package ocibuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is a file of a layer. Type is a tar type flag (regular when
// zero); Name is relative ("usr/bin/x", ".wh.y").
type Entry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Data     []byte
	Linkname string
}

// Layer makes a layer (gzip-compressed, deterministically) of entries.
func Layer(entries ...Entry) (v1.Layer, error) {
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
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Uid: e.UID, Gid: e.GID, Linkname: e.Linkname, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// Image makes a linux/goarch image of layers with cfg as its run
// configuration.
func Image(goarch string, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", goarch, cfg
	if goarch == "arm64" {
		cf.Variant = "v8"
	}
	return mutate.ConfigFile(img, cf)
}

// GoProgram builds the Go package dir for linux/goarch (CGO off,
// reproducibly) and returns the executable.
func GoProgram(dir, goarch string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "ocibuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "prog")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %v\n%s", dir, goarch, err, b)
	}
	return os.ReadFile(out)
}

// ProgramImage is an image holding the Go package dir built for goarch at
// /usr/bin/<name>, which is its entrypoint, plus extra entries.
func ProgramImage(dir, goarch, name string, extra ...Entry) (v1.Image, error) {
	bin, err := GoProgram(dir, goarch)
	if err != nil {
		return nil, err
	}
	entries := append([]Entry{
		{Name: "usr/", Type: tar.TypeDir},
		{Name: "usr/bin/", Type: tar.TypeDir},
		{Name: "usr/bin/" + name, Mode: 0o755, Data: bin},
	}, extra...)
	l, err := Layer(entries...)
	if err != nil {
		return nil, err
	}
	return Image(goarch, v1.Config{Entrypoint: []string{"/usr/bin/" + name}, Env: []string{"PATH=/usr/bin"}}, l)
}

// Index is a multi-arch index of imgs, each described with its config's
// platform.
func Index(imgs ...v1.Image) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}})
	}
	return mutate.AppendManifests(empty.Index, adds...), nil
}

// WriteLayout writes idx as an OCI layout directory dir (replacing one
// that is there).
func WriteLayout(dir string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return lp.AppendIndex(idx)
}
