package fake_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/fake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestConformance runs the boundary's conformance test on the fake
// backend, with a dedicated channel and with the channel on the console.
func TestConformance(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	path := qemutest.WriteSpec(t, "conformance", strings.Replace(hypervisortest.ServiceSpec, "GOPACKAGE", hello, 1))
	for _, shared := range []bool{false, true} {
		name := "channel"
		if shared {
			name = "shared-console"
		}
		t.Run(name, func(t *testing.T) {
			b := &fake.Backend{SharedChannel: shared}
			plat, err := b.Platform(a)
			if err != nil {
				t.Fatal(err)
			}
			s, err := spec.Parse(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := assemble.Build(t.Context(), s, t.TempDir(), assemble.Options{Platform: plat})
			if err != nil {
				t.Fatal(err)
			}
			hypervisortest.Run(t, hypervisortest.Config{
				Backend: b,
				Open: func() (hypervisor.Backend, error) {
					return hypervisor.Open("fake", hypervisor.Options{"shared-channel": map[bool]string{true: "true", false: "false"}[shared]})
				},
				Arch:  a,
				Image: res.Image,
			})
		})
	}
}
