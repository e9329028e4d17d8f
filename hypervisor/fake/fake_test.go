package fake_test

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/kitsshd"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/fake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
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

// TestSSH: a fake guest answers commands over SSH through kitsshd, keyed by
// the boot's seed as a real guest is, so that vm's Exec and Stat (and the
// layers above them) run unchanged against it.
func TestSSH(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	path := qemutest.WriteSpec(t, "fakessh", strings.Replace(hypervisortest.ServiceSpec, "GOPACKAGE", hello, 1))
	b := &fake.Backend{Script: func(g *fake.Guest) {
		err := g.ServeSSH(func(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
			in, _ := io.ReadAll(stdin)
			switch cmd {
			case "cat":
				stdout.Write(in)
				return 0
			case "kitrun-stat /etc/motd":
				json.NewEncoder(stdout).Encode(kitsshd.FileInfo{Path: "/etc/motd", Exists: true, Type: "file", Mode: "0444", Size: 3, Content: []byte("hi\n")})
				return 0
			}
			fmt.Fprintf(stderr, "%s: not found\n", cmd)
			return 127
		})
		if err != nil {
			g.Say("fake: " + err.Error())
			return
		}
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	plat, err := b.Platform(a)
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := assemble.Build(t.Context(), s, t.TempDir(), assemble.Options{Platform: plat, SSH: true})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vm.Boot(t.Context(), b, res.Image, vm.Options{SSH: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Kill()
	if err := v.WaitReady(t.Context(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r, err := v.Exec(t.Context(), "cat", []byte("through the seed's keys"))
	if err != nil || r.Status != 0 || string(r.Stdout) != "through the seed's keys" {
		t.Errorf("cat: %+v, %v", r, err)
	}
	r, err = v.Exec(t.Context(), "nope", nil)
	if err != nil || r.Status != 127 || string(r.Stderr) != "nope: not found\n" {
		t.Errorf("nope: %+v, %v", r, err)
	}
	fi, err := v.Stat(t.Context(), "/etc/motd")
	if err != nil || !fi.Exists || fi.Mode != "0444" || string(fi.Content) != "hi\n" {
		t.Errorf("stat: %+v, %v", fi, err)
	}
	if err := v.Shutdown(t.Context(), 5*time.Second); err != nil {
		t.Error(err)
	}
}
