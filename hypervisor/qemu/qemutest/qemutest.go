// Package qemutest gives kitrun's own tests what they need to boot real VMs:
// QEMU and a Debian kernel for an arch, or a clear skip — and under CI=true a
// failure instead, because a CI run that skipped every VM proves nothing.
package qemutest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/kernel"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/qemu"
)

// missing skips the test, or fails it in CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format+" (run `make deps`)", args...)
	}
	t.Skipf(format+" (run `make deps`)", args...)
}

// Require makes sure QEMU and a kernel .deb for a exist, and returns the arch.
func Require(t testing.TB, archName string) arch.Arch {
	t.Helper()
	a, err := arch.Lookup(archName)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := qemu.BinaryName(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(bin); err != nil {
		missing(t, "%s not installed", bin)
	}
	if _, err := kernel.FindDeb(KernelDir(), a.KernelPackage("linux-image-cloud"), a.KernelFlavour); err != nil {
		missing(t, "no kernel for %s: %v", a.Name, err)
	}
	return a
}

// KernelDir is where `make kernels` puts Debian kernel packages.
func KernelDir() string {
	return filepath.Join(assemble.DefaultCacheDir(), "kernels")
}

// Kernel unpacks (once) and returns the kernel for a.
func Kernel(t testing.TB, a arch.Arch) *kernel.Kernel {
	t.Helper()
	deb, err := kernel.FindDeb(KernelDir(), a.KernelPackage("linux-image-cloud"), a.KernelFlavour)
	if err != nil {
		missing(t, "no kernel for %s: %v", a.Name, err)
	}
	k, err := kernel.FromDeb(context.Background(), deb, filepath.Join(assemble.DefaultCacheDir(), "kernel-trees"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Platform is the QEMU platform of a: what images booted on QEMU are built
// for.
func Platform(t testing.TB, a arch.Arch) platform.Platform {
	t.Helper()
	p, err := (&qemu.Backend{}).Platform(a)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BuildSpec parses and assembles the spec file at path for a on QEMU, using
// kitrun's shared cache so unchanged images cost nothing.
func BuildSpec(t testing.TB, a arch.Arch, path string, opts ...func(*assemble.Options)) *image.Image {
	t.Helper()
	s, err := spec.Parse(path)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	o := assemble.Options{Platform: Platform(t, a)}
	for _, f := range opts {
		f(&o)
	}
	res, err := assemble.Build(context.Background(), s, t.TempDir(), o)
	if err != nil {
		t.Fatalf("build %s: %v", path, err)
	}
	return res.Image
}

// WriteSpec writes a spec into a temporary directory and returns its path.
// Relative paths in it resolve against dir when dir is not empty (copying
// programs' sources is not needed: `go:` paths may be absolute).
func WriteSpec(t testing.TB, name, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".yml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// RepoRoot is the kitrun checkout the tests run in.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.mod above " + dir)
		}
	}
}

// Buffer is a goroutine-safe console sink for tests.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
