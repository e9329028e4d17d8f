// Package disktest boots kitrun's disk images on real QEMU for the disk
// formats' own tests: firmware (SeaBIOS, OVMF, AAVMF), the disk or CD-ROM,
// the console and kitinit's event channel, and a deadline. It proves a
// format boots to kitinit's all-ready before the hypervisor backend takes
// the format over.
//
// The kernel command line a disk image must carry for this wiring comes
// from Cmdline.
package disktest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/internal/childproc"
)

// Media says how the image is attached.
type Media string

const (
	Disk  Media = "disk"
	CDROM Media = "cdrom"
)

// Boot describes one boot of a disk image.
type Boot struct {
	Arch arch.Arch
	// Firmware: "bios" (SeaBIOS, x86_64 only) or "efi" (OVMF or AAVMF).
	Firmware string
	// Path and Format (a qemu-img format name: raw, qcow2, vpc, vhdx,
	// vmdk) of the image; Media how it is attached.
	Path   string
	Format string
	Media  Media
	// Timeout bounds the boot to all-ready (default 3 minutes: firmware
	// under TCG is slow).
	Timeout time.Duration
}

// Cmdline is the kernel command line a disk image booted by this package
// must carry, after the image's own command line: the console and
// kitinit's event channel on this arch's default machine.
func Cmdline(a arch.Arch, image string) string {
	p, err := (&qemu.Backend{}).Platform(a)
	if err != nil {
		panic(err)
	}
	_, hw, err := p.Machine("")
	if err != nil {
		panic(err)
	}
	return hw.Cmdline(image, platform.Wiring{})
}

// Result is what a boot showed.
type Result struct {
	// Events are kitinit's events in arrival order.
	Events []initproto.Event
	// Console is everything the guest wrote on its console.
	Console string
	// Took is the wall time from QEMU's start to all-ready.
	Took time.Duration
}

// Firmware files, from Debian's ovmf and qemu-efi-aarch64 packages.
var efiFirmware = map[string][2]string{
	"x86_64":  {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	"aarch64": {"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
}

// Run boots b and waits for kitinit's all-ready; it fails the test (with
// the console's last lines) if that does not come within the timeout.
// QEMU is killed before Run returns.
func Run(t testing.TB, b Boot) Result {
	t.Helper()
	if b.Timeout == 0 {
		b.Timeout = 3 * time.Minute
	}
	if b.Format == "" {
		b.Format = "raw"
	}
	dir := t.TempDir()
	chanPath := filepath.Join(dir, "channel")
	var args []string
	var bin string
	switch b.Arch.Name {
	case "x86_64":
		bin = "qemu-system-x86_64"
		args = []string{"-machine", "q35", "-cpu", "qemu64", "-m", "256"}
	case "aarch64":
		bin = "qemu-system-aarch64"
		args = []string{"-machine", "virt", "-cpu", "cortex-a57", "-m", "256"}
	default:
		t.Fatalf("disktest: no QEMU wiring for %s", b.Arch.Name)
	}
	if _, err := exec.LookPath(bin); err != nil {
		missing(t, "%s not installed", bin)
	}
	args = append(args, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-accel", "tcg",
		"-chardev", "stdio,id=con", "-serial", "chardev:con",
		"-chardev", "file,id=chan,path="+chanPath)
	if b.Arch.Name == "x86_64" {
		args = append(args, "-serial", "chardev:chan")
	} else {
		args = append(args, "-device", "virtio-serial-device", "-device", "virtconsole,chardev=chan")
	}
	switch b.Firmware {
	case "bios":
		if b.Arch.Name != "x86_64" {
			t.Fatalf("disktest: BIOS boot exists on x86_64 only")
		}
	case "efi":
		fw := efiFirmware[b.Arch.Name]
		if _, err := os.Stat(fw[0]); err != nil {
			missing(t, "no EFI firmware for %s: %v", b.Arch.Name, err)
		}
		vars := filepath.Join(dir, "vars.fd")
		data, err := os.ReadFile(fw[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, data, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+fw[0],
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	default:
		t.Fatalf("disktest: unknown firmware %q", b.Firmware)
	}
	drive := fmt.Sprintf("file=%s,format=%s,if=none,readonly=on,id=boot", b.Path, b.Format)
	switch {
	case b.Media == CDROM && b.Arch.Name == "x86_64":
		args = append(args, "-drive", drive+",media=cdrom", "-device", "ide-cd,drive=boot,bus=ide.0")
	case b.Media == CDROM:
		args = append(args, "-drive", drive+",media=cdrom", "-device", "virtio-scsi-pci,id=scsi", "-device", "scsi-cd,drive=boot")
	default:
		args = append(args, "-drive", drive, "-device", "virtio-blk-pci,drive=boot")
	}

	ctx, cancel := context.WithTimeout(context.Background(), b.Timeout)
	defer cancel()
	cmd := exec.Command(bin, args...)
	var console qemutest.Buffer
	cmd.Stdout = &console
	cmd.Stderr = &console
	start := time.Now()
	exited, err := childproc.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	reaped := false
	defer func() {
		if !reaped {
			childproc.Kill(cmd)
			<-exited
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		evs := readEvents(chanPath)
		for _, e := range evs {
			if e.Kind == initproto.EvAllReady {
				return Result{Events: evs, Console: console.String(), Took: time.Since(start)}
			}
		}
		select {
		case err := <-exited:
			reaped = true
			t.Fatalf("QEMU exited before all-ready (%v); %d events; console:\n%s\nQEMU: %s %s", err, len(evs), tail(console.String(), 30), bin, strings.Join(args, " "))
		case <-ctx.Done():
			t.Fatalf("no all-ready within %s; %d events; console:\n%s\nQEMU: %s %s", b.Timeout, len(evs), tail(console.String(), 30), bin, strings.Join(args, " "))
		case <-tick.C:
		}
	}
}

func readEvents(path string) []initproto.Event {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []initproto.Event
	for _, l := range strings.Split(string(data), "\n") {
		if e, err := initproto.DecodeEvent(l); err == nil {
			out = append(out, e)
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format+" (run `make deps`)", args...)
	}
	t.Skipf(format+" (run `make deps`)", args...)
}
