package hypervisortest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// BuildImage builds spec (YAML text, named name) for the backend's
// platform on x86_64, with the disk format a disk-booting backend needs
// ("" for none). It skips when the host cannot build or boot x86_64.
func BuildImage(t *testing.T, b hypervisor.Backend, name, spec, format string) *image.Image {
	t.Helper()
	a := qemutest.Require(t, "x86_64")
	plat, err := b.Platform(a)
	if err != nil {
		t.Fatal(err)
	}
	return qemutest.BuildSpec(t, a, qemutest.WriteSpec(t, name, spec), func(o *assemble.Options) {
		o.Platform = plat
		if format != "" {
			o.Formats = []string{format}
		}
	})
}

// ServiceImage builds ServiceSpec (a greeter on port 8080) for the
// backend's platform.
func ServiceImage(t *testing.T, b hypervisor.Backend, format string) *image.Image {
	t.Helper()
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	return BuildImage(t, b, "conformance", strings.Replace(ServiceSpec, "GOPACKAGE", hello, 1), format)
}

// Greet reads the greeter's line from addr.
func Greet(t *testing.T, addr string) string { t.Helper(); return greet(t, addr) }

// Stages are the stages v reached, in order.
func Stages(v *vm.VM) []string { return stages(v) }

// AssertOrder fails t unless want occurs in got in this order (other
// stages may come between).
func AssertOrder(t *testing.T, got, want []string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("stages %v: want %v in this order", got, want)
	}
}

// Boot boots img on b with opts and ties the machine to t: killed at
// cleanup, its console (returned) logged if t failed.
func Boot(t *testing.T, b hypervisor.Backend, img *image.Image, opts vm.Options) (*vm.VM, *qemutest.Buffer) {
	t.Helper()
	console := &qemutest.Buffer{}
	opts.Console = console
	v, err := vm.Boot(context.Background(), b, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	})
	return v, console
}
