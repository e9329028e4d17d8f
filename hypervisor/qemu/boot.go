package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
)

// Files a machine may keep in a runtime directory that is not its own.
var runtimeFiles = []string{"qmp.sock", "initrd.img", "efivars.fd", "seed.cpio"}

// bootMedia is what QEMU boots: a kernel and initramfs directly, or a
// disk image through firmware.
type bootMedia struct {
	direct bool
	// Direct boot.
	kernel, initrd, cmdline string
	// Disk boot.
	format   *disk.Format
	path     string // the image file
	qemuFmt  string // qemu-img's name of its format
	cdrom    bool
	firmware disk.Firmware
	efiVars  string // the machine's copy of the EFI variables store
	seed     string // the seed archive for fw_cfg ("" when none)
}

// qemuFormats maps disk formats to QEMU's block drivers, and whether they
// are attached as a CD-ROM.
var qemuFormats = map[string]struct {
	driver string
	cdrom  bool
}{
	"raw-efi": {"raw", false}, "raw-bios": {"raw", false},
	"iso-efi": {"raw", true}, "iso-bios": {"raw", true},
	"qcow2": {"qcow2", false}, "vhd": {"vpc", false}, "vhdx": {"vhdx", false}, "vmdk": {"vmdk", false},
}

// bootMedia checks that the spec's format can boot on this machine.
func (b *Backend) bootMedia(spec hypervisor.Spec, machineName string, mt machineType) (*bootMedia, error) {
	img := spec.Image
	if spec.Format == "" || spec.Format == image.FormatDirect {
		kernel := img.Kernel
		if mt.pvh && !b.NoPVH {
			// A kernel that cannot boot by PVH boots as it is.
			if elf, err := pvhKernel(kernel, filepath.Join(b.cacheDir(), "pvh"), img.Manifest.Kernel); err == nil {
				kernel = elf
			}
		}
		return &bootMedia{direct: true, kernel: kernel, initrd: img.Initrd,
			cmdline: strings.TrimSpace(img.Cmdline + " " + spec.ExtraCmdline)}, nil
	}
	f, err := disk.Lookup(spec.Format)
	if err != nil {
		return nil, err
	}
	if err := f.For(img.Arch); err != nil {
		return nil, err
	}
	qf, ok := qemuFormats[f.Name]
	if !ok {
		return nil, &hypervisor.UnsupportedError{Backend: "qemu", What: "boot the " + f.Name + " format", Hint: "boot one of: " + strings.Join(qemuFormatNames(), ", ")}
	}
	if spec.ExtraCmdline != "" {
		return nil, fmt.Errorf("a %s image carries its kernel command line; extra kernel arguments need direct kernel boot", f.Name)
	}
	path, err := img.Disk(f.Name)
	if err != nil {
		return nil, err
	}
	if d := img.Manifest.Disks[f.Name]; d.Machine != "" && d.Machine != machineName {
		return nil, fmt.Errorf("the %s image of %s is wired for machine %s, not %s; rebuild it with --machine %s", f.Name, img.Manifest.Name, d.Machine, machineName, machineName)
	}
	m := &bootMedia{format: f, path: path, qemuFmt: qf.driver, cdrom: qf.cdrom, firmware: f.Firmware}
	if f.Base != "" {
		base, _ := disk.Lookup(f.Base)
		m.firmware = base.Firmware
	}
	switch m.firmware {
	case disk.BIOS:
		if mt.bios == "none" {
			return nil, fmt.Errorf("machine %s has no BIOS to boot a %s image; use an EFI format", mt.machine, f.Name)
		}
	case disk.EFI:
		if mt.efiCode == "" {
			return nil, fmt.Errorf("machine %s has no EFI firmware to boot a %s image", mt.machine, f.Name)
		}
		if _, err := os.Stat(mt.efiCode); err != nil {
			return nil, fmt.Errorf("EFI firmware %s is missing: install Debian's ovmf (x86_64) or qemu-efi-aarch64 (aarch64), or run `make deps`", mt.efiCode)
		}
	}
	if mt.disk == nil {
		return nil, fmt.Errorf("machine %s boots kernels only, not disk images", mt.machine)
	}
	return m, nil
}

// CanBoot says whether QEMU boots a disk format (of the arches its firmware
// takes).
func CanBoot(format string) bool {
	_, ok := qemuFormats[format]
	return ok
}

func qemuFormatNames() []string {
	var out []string
	for _, n := range disk.Names() {
		if _, ok := qemuFormats[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// prepare writes the per-boot files into the runtime directory: the
// initramfs with the seed appended (direct boot), or the seed archive for
// fw_cfg and a writable copy of the EFI variable store (disk boot).
func (bm *bootMedia) prepare(spec hypervisor.Spec, mt machineType, dir string) error {
	img := spec.Image
	if bm.direct {
		if len(spec.Seed) > 0 {
			p := filepath.Join(dir, "initrd.img")
			if err := img.InitrdWithSeed(spec.Seed, p); err != nil {
				return fmt.Errorf("per-boot files: %w", err)
			}
			bm.initrd = p
		}
		return nil
	}
	if bm.firmware == disk.EFI {
		// The variable store is written by the firmware: each machine
		// gets its own copy of the template.
		vars, err := os.ReadFile(mt.efiVars)
		if err != nil {
			return fmt.Errorf("EFI variables template: %w", err)
		}
		bm.efiVars = filepath.Join(dir, "efivars.fd")
		if err := os.WriteFile(bm.efiVars, vars, 0o600); err != nil {
			return err
		}
	}
	if len(spec.Seed) > 0 {
		bm.seed = filepath.Join(dir, "seed.cpio")
		if err := os.WriteFile(bm.seed, spec.Seed, 0o600); err != nil {
			return fmt.Errorf("per-boot files: %w", err)
		}
	}
	return nil
}

// args are QEMU's arguments for the boot media.
func (bm *bootMedia) args(mt machineType, accel string, network, noChannel bool) []string {
	if bm.direct {
		cmdline := mt.hw.Cmdline(bm.cmdline, platform.Wiring{Network: network, NoChannel: noChannel})
		if hint := tscHint(mt, accel); len(hint) > 0 {
			cmdline += " " + strings.Join(hint, " ")
		}
		args := []string{"-kernel", bm.kernel, "-append", cmdline}
		if bm.initrd != "" {
			args = append(args, "-initrd", bm.initrd)
		}
		return args
	}
	var args []string
	if bm.firmware == disk.EFI {
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+mt.efiCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+bm.efiVars)
	}
	drive := fmt.Sprintf("file=%s,format=%s,if=none,id=boot,readonly=on", bm.path, bm.qemuFmt)
	if bm.cdrom {
		args = append(args, "-drive", drive+",media=cdrom")
		args = append(args, mt.cdrom("boot")...)
	} else {
		args = append(args, "-drive", drive)
		args = append(args, mt.disk("boot")...)
	}
	if bm.seed != "" {
		args = append(args, "-fw_cfg", "name="+initproto.SeedFwCfgName+",file="+bm.seed)
	}
	return args
}
