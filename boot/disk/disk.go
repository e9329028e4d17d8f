// Package disk turns an assembled image (kernel, initramfs, kernel command
// line) into the bootable disk images that firmware and cloud platforms
// take: raw disks with an EFI or BIOS boot path, hybrid ISOs, and the
// virtual-disk containers (qcow2, VHD, VHDX, VMDK) and import bundles built
// from them. Everything is written in pure Go, with no root, no loop
// devices and no host tools; boot loaders and EFI stubs come from Debian's
// packages (see Loaders).
//
// Every format is reproducible: the same payload gives byte-identical
// output (times are fixed, identifiers derived from the content), and an
// output file appears under its final name only when it is complete.
//
// Each format registers itself in this package's table (see Format); the
// sub-packages hold the file-system and container writers the formats are
// made of.
package disk

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
)

// Payload is what a disk image boots.
type Payload struct {
	// Name is the image's name (volume labels, import metadata).
	Name string
	Arch arch.Arch
	// Kernel and Initrd are host paths of the kernel image and the
	// compressed initramfs.
	Kernel string
	Initrd string
	// Cmdline is the complete kernel command line, the platform's wiring
	// (console, kitinit's channel) included: a disk image carries it.
	Cmdline string
}

// Firmware is the boot path a format needs.
type Firmware string

const (
	BIOS Firmware = "bios"
	EFI  Firmware = "efi"
	// Direct means no firmware boot path: the hypervisor loads the kernel.
	Direct Firmware = "direct"
)

// Format is one kind of output.
type Format struct {
	// Name is what users write: --format NAME, `format:` in a spec.
	Name string
	// File is the output's file name in the image directory.
	File string
	// Firmware is the boot path the output takes.
	Firmware Firmware
	// Arches lists the architectures (kitrun names) whose firmware can
	// boot this format.
	Arches []string
	// Base names the format this one is a container or bundle of ("" for
	// a format built from the payload itself): qcow2 is raw-efi in qcow2.
	Base string
	// Summary says in a few words what it is and who boots it.
	Summary string
	// Build writes the format to out (a path that must not be visible
	// until complete; see atomicfile). base is the path of the Base
	// format's file, already built, or "" when Base is "".
	Build func(ctx context.Context, in *Input, base, out string) error
}

// Input is what a format is built from.
type Input struct {
	Payload
	// Loaders finds boot loader and EFI stub files.
	Loaders *Loaders
}

var formats = map[string]*Format{}

// register adds a format to the table; each format's file calls it from
// init. The format's Build is wrapped so that it refuses, before reading
// anything, an arch whose firmware cannot boot the format. Its output file
// becomes one of the files kitrun writes in an image directory, which a
// rebuild may replace (see image.CheckReplaceable).
func register(f *Format) {
	if _, dup := formats[f.Name]; dup {
		panic("disk: format registered twice: " + f.Name)
	}
	build := f.Build
	f.Build = func(ctx context.Context, in *Input, base, out string) error {
		if err := f.For(in.Arch); err != nil {
			return err
		}
		return build(ctx, in, base, out)
	}
	formats[f.Name] = f
	image.RegisterFile(f.File)
}

// Lookup finds a format by name.
func Lookup(name string) (*Format, error) {
	if f, ok := formats[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown disk format %q; valid: %s", name, strings.Join(Names(), ", "))
}

// Names lists the registered formats, sorted.
func Names() []string {
	names := make([]string, 0, len(formats))
	for n := range formats {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// For says whether arch a can boot format f, and if not, why.
func (f *Format) For(a arch.Arch) error {
	if slices.Contains(f.Arches, a.Name) {
		return nil
	}
	valid := "none"
	if names := NamesFor(a); len(names) > 0 {
		valid = strings.Join(names, ", ")
	}
	return fmt.Errorf("format %s cannot boot on %s (its %s boot path exists for %s only); formats for %s: %s",
		f.Name, a.Name, f.Firmware, strings.Join(f.Arches, ", "), a.Name, valid)
}

// NamesFor lists the registered formats that arch a can boot, sorted.
func NamesFor(a arch.Arch) []string {
	var names []string
	for _, n := range Names() {
		if slices.Contains(formats[n].Arches, a.Name) {
			names = append(names, n)
		}
	}
	return names
}
