package assemble_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/ociimage/ocibuild"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestImageService builds a spec with an image service twice from empty
// caches: the initramfs is byte-identical, the manifest records the
// image's digest, and the image's files sit under its root with their
// modes.
func TestImageService(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	dir := t.TempDir()
	img, err := ocibuild.ProgramImage(repo(t, "boot/ociimage/testdata/hello"), "amd64", "hello",
		ocibuild.Entry{Name: "usr/bin/su", Mode: 0o4755, Data: []byte("setuid")})
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(filepath.Join(dir, "hello.tar"), nil, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "img.yml")
	os.WriteFile(p, []byte("version: 1\nkernel: {package: linux-image-cloud}\nservices:\n  - name: hello\n    image: docker-archive:hello.tar\n    args: [x]\n"), 0o644)
	first := build(t, p, assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t)})
	second := build(t, p, assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t)})
	x, _ := os.ReadFile(filepath.Join(first.Image.Dir, image.InitrdFile))
	y, _ := os.ReadFile(filepath.Join(second.Image.Dir, image.InitrdFile))
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Errorf("initramfs differs between two builds of the same image service")
	}
	m := first.Image.Manifest
	d, _ := img.Digest()
	if len(m.Images) != 1 || m.Images[0].Digest != d.String() || m.Images[0].Program != "services/hello" || m.Images[0].Platform != "linux/amd64" {
		t.Fatalf("manifest images: %+v, want digest %s", m.Images, d)
	}
	found := map[string]image.Entry{}
	for _, e := range m.Files {
		found[e.Path] = e
	}
	root := "/containers/services/hello/rootfs"
	if e, ok := found[root+"/usr/bin/hello"]; !ok || e.Mode != "0755" || !strings.Contains(e.Origin, d.String()) {
		t.Errorf("entrypoint in the initramfs: %+v", e)
	}
	if e := found[root+"/usr/bin/su"]; e.Mode != "4755" {
		t.Errorf("setuid file mode %q, want 4755", e.Mode)
	}
	for _, mp := range []string{"/proc", "/dev", "/tmp", "/sys"} {
		if e, ok := found[root+mp]; !ok || e.Type != "dir" {
			t.Errorf("mount point %s missing", mp)
		}
	}
}

func TestImageServiceErrors(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	dir := t.TempDir()
	arm, err := ocibuild.ProgramImage(repo(t, "boot/ociimage/testdata/hello"), "arm64", "hello")
	if err != nil {
		t.Fatal(err)
	}
	tarball.WriteToFile(filepath.Join(dir, "arm.tar"), nil, arm)
	for _, c := range []struct{ image, want string }{
		{"docker-archive:arm.tar", "img.yml:5:12: image docker-archive:" + dir + "/arm.tar: wrong architecture: the image is linux/arm64/v8, the target is linux/amd64"},
		{"docker-archive:missing.tar", "img.yml:5:12: image docker-archive:" + dir + "/missing.tar: reading docker archive"},
		{"127.0.0.1:1/acme/web:1", "img.yml:5:12: image 127.0.0.1:1/acme/web:1: registry unreachable"},
	} {
		p := filepath.Join(dir, "img.yml")
		os.WriteFile(p, []byte("version: 1\nkernel: {package: linux-image-cloud}\nservices:\n  - name: web\n    image: "+c.image+"\n"), 0o644)
		s, err := spec.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = assemble.Build(t.Context(), s, t.TempDir(), assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %s", c.image, err, c.want)
		}
	}
}

// TestImageConfig: the image's entrypoint, cmd, env, user (by name, from
// its /etc/passwd) and working directory apply unless the spec overrides
// them.
func TestImageConfig(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	dir := t.TempDir()
	l, err := ocibuild.Layer(
		ocibuild.Entry{Name: "bin/", Type: '5'},
		ocibuild.Entry{Name: "bin/app", Mode: 0o755, Data: []byte("#!app")},
		ocibuild.Entry{Name: "etc/", Type: '5'},
		ocibuild.Entry{Name: "etc/passwd", Data: []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")},
	)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ocibuild.Image("amd64", v1.Config{Entrypoint: []string{"app", "--serve"}, Cmd: []string{"--port", "80"},
		Env: []string{"PATH=/bin", "MODE=image"}, User: "app", WorkingDir: "/srv"}, l)
	if err != nil {
		t.Fatal(err)
	}
	tarball.WriteToFile(filepath.Join(dir, "app.tar"), nil, img)
	p := filepath.Join(dir, "app.yml")
	os.WriteFile(p, []byte(`version: 1
kernel: {package: linux-image-cloud}
services:
  - name: image
    image: docker-archive:app.tar
  - name: override
    image: docker-archive:app.tar
    args: [--port, "8080"]
    env: {MODE: spec}
    user: nobody
    dir: /
`), 0o644)
	s, err := spec.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := assemble.Inspect(t.Context(), s, assemble.Options{Platform: qemutest.Platform(t, a), CacheDir: freshCache(t)})
	if err != nil {
		t.Fatal(err)
	}
	x := c.Config.Services[0].Exec
	if x.Path != "/bin/app" || strings.Join(x.Args, " ") != "--serve --port 80" || x.Env["MODE"] != "image" || x.UID != 1000 || x.GID != 1001 || x.Dir != "/srv" {
		t.Errorf("from the image: %+v", x)
	}
	if x.Sandbox == nil || x.Sandbox.Root != "/containers/services/image/rootfs" || len(x.Sandbox.Caps) != 14 {
		t.Errorf("sandbox: %+v", x.Sandbox)
	}
	y := c.Config.Services[1].Exec
	if strings.Join(y.Args, " ") != "--serve --port 8080" || y.Env["MODE"] != "spec" || y.Env["PATH"] != "/bin" || y.UID != 65534 || y.Dir != "/" {
		t.Errorf("overridden: %+v", y)
	}
}
