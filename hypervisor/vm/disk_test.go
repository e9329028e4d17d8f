package vm_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestDiskFormatsBoot boots examples/minimal.yml, with SSH forced on, from
// every disk format QEMU can boot for the arch, through the QEMU backend:
// firmware, boot loader or EFI stub, the kernel, kitinit's events on the
// same channel as a direct boot, this boot's own SSH keys delivered through
// fw_cfg (an Exec answers), and kitinit's power-off.
func TestDiskFormatsBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM per format")
	}
	for _, archName := range []string{"x86_64", "aarch64"} {
		t.Run(archName, func(t *testing.T) {
			a := qemutest.Require(t, archName)
			formats := disk.NamesFor(a)
			img := qemutest.BuildSpec(t, a, example(t, "minimal.yml"), func(o *assemble.Options) {
				o.SSH, o.Formats = true, formats
			})
			for _, f := range formats {
				t.Run(f, func(t *testing.T) {
					img, f := img, f
					if !qemu.CanBoot(f) {
						// A cloud's bundle: boot the disk the cloud would.
						img, f = cloudDisk(t, img, f)
					}
					var console qemutest.Buffer
					v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, vm.Options{
						Resources: hypervisor.Resources{Accel: "tcg"}, Format: f, Console: &console,
					})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() {
						v.Kill()
						if t.Failed() {
							t.Logf("console:\n%s", console.String())
						}
					})
					if err := v.WaitReady(context.Background(), 4*time.Minute); err != nil {
						t.Fatal(err)
					}
					if v.Machine.Info().Format != f {
						t.Errorf("info format %q", v.Machine.Info().Format)
					}
					r, err := v.Exec(within(time.Minute), "kitrun-ping", nil)
					if err != nil || string(r.Stdout) != "pong\n" {
						t.Fatalf("exec over SSH with this boot's keys: %+v, %v", str(r), err)
					}
					if err := v.Shutdown(context.Background(), 20*time.Second); err != nil {
						t.Fatal(err)
					}
					assertOrder(t, stages(v), []string{"firmware", "init-start", "service-ready sshd", "all-ready", "shutdown-done"})
				})
			}
		})
	}
}

// cloudDisk returns an image whose raw-efi disk is what a cloud bundle
// holds: gcp's disk.raw out of its tar.gz, aws's manifest's disk (checked
// against the manifest's size and digest).
func cloudDisk(t *testing.T, img *image.Image, format string) (*image.Image, string) {
	t.Helper()
	bundle, err := img.Disk(format)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var raw string
	switch format {
	case "gcp":
		cmd := exec.Command("tar", "-xzf", bundle, "-C", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		raw = filepath.Join(dir, "disk.raw")
	case "aws":
		m, err := awsimport.Read(bundle)
		if err != nil {
			t.Fatal(err)
		}
		raw = filepath.Join(filepath.Dir(bundle), m.Disk.File)
		b, err := os.ReadFile(raw)
		if err != nil || int64(len(b)) != m.Disk.Size || fmt.Sprintf("%x", sha256.Sum256(b)) != m.Disk.SHA256 {
			t.Fatalf("aws manifest %+v does not describe %s (%d bytes, %v)", m.Disk, raw, len(b), err)
		}
	default:
		t.Fatalf("QEMU cannot boot %s and no cloud bundle is known by that name", format)
	}
	c := *img
	c.Dir = filepath.Dir(raw)
	c.Manifest.Disks = map[string]image.Disk{"raw-efi": {File: filepath.Base(raw), Machine: img.Manifest.Disks["raw-efi"].Machine}}
	return &c, "raw-efi"
}
