//go:build linux

package hyperv_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/hyperv"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestGen2Image builds images for real Hyper-V (machine gen2, which the
// fake cannot boot: QEMU has no VMBus) and checks what they would load:
// the hv_* modules resolve in Debian's cloud kernel, with their
// dependencies, and the disk's command line wires COM1 and COM2.
func TestGen2Image(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	b, err := hyperv.New(hypervisor.Options{"pwsh": "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Platform(a)
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultMachine != hyperv.MachineGen2 || len(p.Machines) != 1 {
		t.Fatalf("platform %+v", p)
	}
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	text := "version: 1\nname: gen2\nkernel: {package: linux-image-cloud, cmdline: quiet}\n" +
		"network: {mode: auto}\n" +
		"services:\n  - {name: hello, go: " + hello + ", args: [-addr, ':8080'], ready: {tcp: 8080}}\n"
	path := filepath.Join(t.TempDir(), "gen2.yml")
	os.WriteFile(path, []byte(text), 0o644)
	s, err := spec.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := assemble.Build(context.Background(), s, t.TempDir(), assemble.Options{Platform: p, Formats: []string{"vhdx", "iso-efi"}})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Image.Manifest
	if m.Platform != "hyperv" {
		t.Errorf("platform %q", m.Platform)
	}
	var mods []string
	for _, f := range m.Files {
		if strings.HasPrefix(f.Origin, "kernel module ") {
			mods = append(mods, strings.TrimPrefix(f.Origin, "kernel module "))
		}
	}
	for _, want := range []string{"hv_vmbus", "hyperv_keyboard", "hv_netvsc", "hv_storvsc", "sd_mod", "scsi_mod"} {
		if !slices.Contains(mods, want) {
			t.Errorf("module %s not in the image (modules: %v)", want, mods)
		}
	}
	for _, f := range []string{"vhdx", "iso-efi"} {
		d, ok := m.Disks[f]
		if !ok {
			t.Fatalf("no %s disk", f)
		}
		for _, want := range []string{"console=ttyS0,115200", initproto.ParamChannel + "=/dev/ttyS1", "hv_vmbus", "hyperv_keyboard", "hv_netvsc",
			initproto.ParamSeed + "=" + initproto.SeedDisk, "hv_storvsc", "sd_mod"} {
			if !strings.Contains(d.Cmdline, want) {
				t.Errorf("%s command line %q lacks %s", f, d.Cmdline, want)
			}
		}
		if d.Machine != hyperv.MachineGen2 {
			t.Errorf("%s machine %q", f, d.Machine)
		}
	}
	// What gen2 cannot do is refused before anything runs on Windows.
	if _, err := b.Start(context.Background(), hypervisor.Spec{Image: res.Image, Format: "raw-efi"}); err == nil || !strings.Contains(err.Error(), "vhdx or iso-efi") {
		t.Errorf("raw-efi on Hyper-V: %v", err)
	}
	if _, err := b.Start(context.Background(), hypervisor.Spec{Image: res.Image, Format: "vhdx", Seed: make([]byte, initproto.MaxSeed+1)}); err == nil || !strings.Contains(err.Error(), "per-boot files take") {
		t.Errorf("a seed larger than a seed disk holds: %v", err)
	}
	if _, err := b.Start(context.Background(), hypervisor.Spec{Image: res.Image, Format: "vhdx", Resources: hypervisor.Resources{Accel: "kvm"}}); err == nil || !strings.Contains(err.Error(), "accelerator") {
		t.Errorf("--accel kvm on Hyper-V: %v", err)
	}
}
