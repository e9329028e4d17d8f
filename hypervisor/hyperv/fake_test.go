//go:build linux

package hyperv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/hyperv"
	"github.com/kitrun/kitrun/hypervisor/hyperv/hypervfake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestMain lets the test binary be the fake host's PowerShell.
func TestMain(m *testing.M) {
	hypervfake.MaybeRunPwsh()
	os.Exit(m.Run())
}

func open(t *testing.T, h *hypervfake.Host) *hyperv.Backend {
	t.Helper()
	b, err := hyperv.New(h.Options())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDriver runs the PowerShell driver's scripts through a real
// PowerShell process (the fake's) without booting anything.
func TestDriver(t *testing.T) {
	h := hypervfake.Start(t)
	b := open(t, h)
	d := b.Driver
	ctx := context.Background()
	if err := d.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v, err := d.Version(ctx); err != nil || !strings.Contains(v, "Hyper-V") {
		t.Errorf("Version = %q, %v", v, err)
	}
	s, err := d.Status(ctx, "kitrun-nothing-00000000")
	if err != nil || s.Found {
		t.Errorf("Status of no VM = %+v, %v", s, err)
	}
	data := strings.Repeat("kitrun\n", 100000)
	up, err := d.Upload(ctx, "kitrun-t-00000001", "disk.vhdx", strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got, err := os.ReadFile(up.Path); err != nil || string(got) != data {
		t.Fatalf("uploaded %s: %d bytes, %v", up.Path, len(got), err)
	}
	// A failing step is named.
	_, err = d.Start(ctx, hyperv.VMConfig{Name: "kitrun-t-00000001", Directory: up.Directory, MemoryBytes: 256 << 20, CPUs: 1,
		Disk: filepath.Join(up.Directory, "kitrun-t-00000001", "missing.vhdx")})
	var se *hyperv.ScriptError
	if !errors.As(err, &se) || se.Step != "attach the disk" || se.Script != "start" {
		t.Fatalf("Start with a missing disk: %v", err)
	}
	if s, err := d.Status(ctx, "kitrun-t-00000001"); err != nil || !s.Found || s.State != "Off" {
		t.Errorf("the VM created before the failure: %+v, %v", s, err)
	}
	// An odd memory size is Hyper-V's error too.
	if _, err := d.Start(ctx, hyperv.VMConfig{Name: "kitrun-t-00000002", Directory: up.Directory, MemoryBytes: 255 << 20, CPUs: 1}); !errors.As(err, &se) || se.Step != "create the VM" {
		t.Errorf("odd memory: %v", err)
	}
	// The seed disk is checked as Hyper-V checks a disk: a file that is
	// not a VHDX, or the boot disk again, is refused at its step.
	vhdx := "vhdxfile" + strings.Repeat("\x00", 4096)
	boot, err := d.Upload(ctx, "kitrun-t-00000003", "disk.vhdx", strings.NewReader(vhdx), int64(len(vhdx)))
	if err != nil {
		t.Fatal(err)
	}
	notDisk, err := d.Upload(ctx, "kitrun-t-00000003", "seed.vhdx", strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for i, seed := range []string{notDisk.Path, boot.Path} {
		name := fmt.Sprintf("kitrun-t-0000000%d", 3+i)
		_, err := d.Start(ctx, hyperv.VMConfig{Name: name, Directory: up.Directory, MemoryBytes: 256 << 20, CPUs: 1,
			Disk: boot.Path, Seed: seed})
		want := []string{"not a virtual hard disk", "already attached"}[i]
		if !errors.As(err, &se) || se.Step != "attach the seed disk" || !strings.Contains(err.Error(), want) {
			t.Errorf("seed disk %s: %v", seed, err)
		}
	}
	for _, n := range []string{"kitrun-t-00000001", "kitrun-t-00000002", "kitrun-t-00000003", "kitrun-t-00000004"} {
		if err := b.Destroy(ctx, n); err != nil {
			t.Errorf("Destroy(%s): %v", n, err)
		}
	}
	if vms := h.VMs(); len(vms) != 0 {
		t.Errorf("VMs left: %v", vms)
	}
	if _, err := os.Stat(filepath.Dir(up.Path)); !os.IsNotExist(err) {
		t.Errorf("the VM's directory is left: %v", err)
	}
	if _, err := b.Alive(ctx, "not an id"); err == nil {
		t.Error("Alive of a name kitrun never makes must fail")
	}
	for _, c := range h.Calls() {
		t.Logf("exit %d: %s", c.Exit, strings.Join(c.Commands, "; "))
	}
}

// TestOptions checks the backend's options.
func TestOptions(t *testing.T) {
	for _, c := range []struct {
		opts hypervisor.Options
		want string
	}{
		{hypervisor.Options{"nope": "1"}, "valid: host, key, known-hosts, pwsh, switch, vm-dir, hardware"},
		{hypervisor.Options{"host": "win"}, "bad host"},
		{hypervisor.Options{"host": "me@win"}, "known-hosts"},
		{hypervisor.Options{"host": "me@win", "known-hosts": "/nonexistent"}, "known-hosts"},
		{hypervisor.Options{"key": "k"}, "go with host="},
		{hypervisor.Options{"hardware": "vmbus"}, "hardware"},
	} {
		_, err := hypervisor.Open("hyperv", c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.opts, err, c.want)
		}
	}
	b, err := hyperv.New(hypervisor.Options{"pwsh": "/nonexistent/pwsh"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(context.Background(), mustArch(t)); err == nil || !strings.Contains(err.Error(), "/nonexistent/pwsh") {
		t.Errorf("Verify without PowerShell: %v", err)
	}
}

// buildImage builds spec text for the fake's platform with the given disk
// formats.
func buildImage(t *testing.T, b *hyperv.Backend, name, text string, formats ...string) *image.Image {
	t.Helper()
	a := mustArch(t)
	plat, err := b.Platform(a)
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Parse(qemutest.WriteSpec(t, name, text))
	if err != nil {
		t.Fatal(err)
	}
	res, err := assemble.Build(context.Background(), s, t.TempDir(), assemble.Options{Platform: plat, Formats: formats})
	if err != nil {
		t.Fatal(err)
	}
	return res.Image
}

func mustArch(t *testing.T) arch.Arch {
	t.Helper()
	return qemutest.Require(t, "x86_64")
}

// TestConformance runs the boundary's conformance test on the fake host:
// the real driver and its scripts, VMs booted by QEMU from the vhdx.
func TestConformance(t *testing.T) {
	requireOVMF(t)
	h := hypervfake.Start(t)
	b := open(t, h)
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	img := buildImage(t, b, "conformance", strings.Replace(hypervisortest.ServiceSpec, "GOPACKAGE", hello, 1), "vhdx")
	hypervisortest.Run(t, hypervisortest.Config{
		Backend: b,
		Open:    func() (hypervisor.Backend, error) { return hypervisor.Open("hyperv", h.Options()) },
		Arch:    mustArch(t),
		Image:   img,
		Format:  "vhdx",
	})
	if vms := h.VMs(); len(vms) != 0 {
		t.Errorf("VMs left on the host: %v", vms)
	}
}

func requireOVMF(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.fd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: OVMF missing (run `make deps`)")
		}
		t.Skip("OVMF missing (run `make deps`)")
	}
}

// TestISOBoot boots the iso-efi format, attached as a DVD, on the fake
// host, with networking by DHCP (the platform has no static layout, as
// Hyper-V's Default Switch), and an empty seed disk: ready, then a clean
// shutdown.
func TestISOBoot(t *testing.T) {
	requireOVMF(t)
	h := hypervfake.Start(t)
	b := open(t, h)
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	img := buildImage(t, b, "iso", "version: 1\nname: iso\nkernel: {package: linux-image-cloud, cmdline: quiet}\nnetwork: {mode: auto}\n"+
		"services:\n  - {name: hello, go: "+hello+", args: [-addr, ':8080'], ready: {tcp: 8080}}\n", "iso-efi")
	var console qemutest.Buffer
	v, err := vm.Boot(context.Background(), b, img, vm.Options{Format: "iso-efi", Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Kill()
	if err := v.WaitReady(context.Background(), 2*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, console.String())
	}
	if err := v.Shutdown(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, c := range h.Calls() {
		cmds = append(cmds, c.Commands...)
	}
	all := strings.Join(cmds, "\n")
	// No per-boot files, yet an (empty) seed disk: kitinit, told to read
	// its seed from a disk, finds it at once instead of waiting for one.
	for _, want := range []string{"Add-VMDvdDrive", "-FirstBootDevice (Get-VMDvdDrive", "Set-VMComPort -VMName " + v.Machine.Info().ID + " -Number 2", `seed.vhdx`} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q among the commands run:\n%s", want, all)
		}
	}
	if !strings.Contains(all, "Connect-VMNetworkAdapter -VMName "+v.Machine.Info().ID+" -SwitchName Default Switch") {
		t.Error("a networked image's adapter was not connected to the switch")
	}
	if !strings.Contains(console.String(), "(dhcp from ") {
		t.Errorf("no DHCP lease on the console:\n%s", console.String())
	}
	if vms := h.VMs(); len(vms) != 0 {
		t.Errorf("VMs left: %v", vms)
	}
}

// TestSSHEndToEnd boots an image whose boot needs per-boot files (SSH
// keys) on the fake host: the seed travels on a second disk (seed.vhdx,
// attached with Add-VMHardDiskDrive after the boot disk), kitinit finds
// it among the block devices, and vm's SSH client pins the host key it
// delivered. The seed disk goes with the VM.
func TestSSHEndToEnd(t *testing.T) {
	requireOVMF(t)
	h := hypervfake.Start(t)
	b := open(t, h)
	img := buildImage(t, b, "sshguest", hypervisortest.SSHSpec, "vhdx")
	hypervisortest.RunSSH(t, b, img, "vhdx", 4*time.Minute)
	var cmds []string
	for _, c := range h.Calls() {
		cmds = append(cmds, c.Commands...)
	}
	all := strings.Join(cmds, "\n")
	if !strings.Contains(all, "Add-VMHardDiskDrive") || !strings.Contains(all, "-ControllerType SCSI") || !strings.Contains(all, `seed.vhdx`) {
		t.Errorf("no seed disk among the commands run:\n%s", all)
	}
	if vms := h.VMs(); len(vms) != 0 {
		t.Errorf("VMs left: %v", vms)
	}
}
