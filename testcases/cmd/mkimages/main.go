// Command mkimages writes the OCI images the shipped test cases run
// (testcases/cases/090_images), as multi-arch (amd64, arm64, riscv64, s390x, ppc64le: every arch kitrun boots) OCI layouts
// under the directory given (testcases/images): `make testimages`. The
// images are built from Go programs of this repository, reproducibly, so
// no registry or internet is needed.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kitrun/kitrun/boot/ociimage/ocibuild"
)

// images are NAME: the Go package (relative to the repository root) that
// becomes /usr/bin/NAME, the entrypoint.
var images = []struct{ name, pkg string }{
	{"hello", "examples/cmd/hello"},
	{"escape", "testcases/cmd/escape"},
	{"demo", "examples/cmd/demo"},
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkimages REPO-ROOT OUT-DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(root, out string) error {
	for _, im := range images {
		var imgs []v1.Image
		for _, goarch := range []string{"amd64", "arm64", "riscv64", "s390x", "ppc64le"} {
			img, err := ocibuild.ProgramImage(filepath.Join(root, im.pkg), goarch, im.name)
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
		}
		idx, err := ocibuild.Index(imgs...)
		if err != nil {
			return err
		}
		dir := filepath.Join(out, im.name)
		if err := ocibuild.WriteLayout(dir, idx); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		d, _ := idx.Digest()
		fmt.Printf("%s: %s\n", dir, d)
	}
	return nil
}
