// Package arch is the table of target architectures kitrun supports. Every
// arch-dependent fact on the image side (Go's GOARCH, Debian's architecture
// name, the guest's console and event-channel devices) lives in one row here,
// so that adding an architecture is adding a row, not hunting for `if`s.
// Facts about the hypervisor (QEMU binary, machine types) live in the
// backend's own table, keyed by the same Name.
package arch

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
)

// Arch describes one target architecture.
type Arch struct {
	// Name is kitrun's name for the architecture, as users type it (uname -m).
	Name string
	// GOARCH is what Go calls it when cross-compiling kitinit and services.
	GOARCH string
	// GoEnv pins the instruction-set level (GOAMD64, GOARM64, ...) that
	// kitrun's own guest programs are built for to the baseline every
	// machine of the arch runs, so that a GOAMD64=v3 in a builder's
	// environment cannot change the embedded binaries or produce a kitinit
	// the emulated CPU lacks instructions for.
	GoEnv []string
	// Debian is Debian's architecture name, used to pick kernel packages.
	Debian string
	// KernelFlavour is the Debian kernel flavour kitrun uses by default.
	KernelFlavour string
	// Machines is what the guest sees on each virtual machine type of this
	// arch, by machine name; DefaultMachine names the one used when none is
	// asked for.
	Machines       map[string]Hardware
	DefaultMachine string
}

// Hardware is the guest's view of one machine type: the device names kitinit
// and the kernel command line use, and the kernel modules without which those
// devices do not exist (Debian builds virtio as modules).
type Hardware struct {
	// Console is the kernel console device (console=...).
	Console string
	// Channel is the guest device of kitrun's event channel.
	Channel string
	// ChannelModules must be loaded before Channel exists.
	ChannelModules []string
	// NICModules must be loaded before the first NIC exists.
	NICModules []string
}

// MachineNames lists the machine types of the arch, default first.
func (a Arch) MachineNames() []string {
	names := []string{a.DefaultMachine}
	var rest []string
	for n := range a.Machines {
		if n != a.DefaultMachine {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// Machine returns the hardware of a machine type ("" means the default).
func (a Arch) Machine(name string) (string, Hardware, error) {
	if name == "" {
		name = a.DefaultMachine
	}
	hw, ok := a.Machines[name]
	if !ok {
		return "", Hardware{}, fmt.Errorf("unknown machine %q for %s; valid: %s", name, a.Name, strings.Join(a.MachineNames(), ", "))
	}
	return name, hw, nil
}

var table = map[string]Arch{
	"x86_64": {
		Name:          "x86_64",
		GOARCH:        "amd64",
		GoEnv:         []string{"GOAMD64=v1"},
		Debian:        "amd64",
		KernelFlavour: "cloud-amd64",
		// q35 finds a second 16550 through ACPI, so its channel needs no
		// module; microvm describes only one UART, so it uses virtio-console.
		Machines: map[string]Hardware{
			"q35": {
				Console:    "ttyS0",
				Channel:    "/dev/ttyS1",
				NICModules: []string{"virtio_pci", "virtio_net"},
			},
			"microvm": {
				Console:        "ttyS0",
				Channel:        "/dev/hvc0",
				ChannelModules: []string{"virtio_mmio", "virtio_console"},
				NICModules:     []string{"virtio_mmio", "virtio_net"},
			},
		},
		DefaultMachine: "q35",
	},
	"aarch64": {
		Name:          "aarch64",
		GOARCH:        "arm64",
		GoEnv:         []string{"GOARM64=v8.0"},
		Debian:        "arm64",
		KernelFlavour: "cloud-arm64",
		// virt has one PL011; the channel is virtio-console on virtio-mmio,
		// which needs fewer modules than the PCI transport.
		Machines: map[string]Hardware{
			"virt": {
				Console:        "ttyAMA0",
				Channel:        "/dev/hvc0",
				ChannelModules: []string{"virtio_mmio", "virtio_console"},
				NICModules:     []string{"virtio_mmio", "virtio_net"},
			},
		},
		DefaultMachine: "virt",
	},
}

// aliases lets users type the names other tools use.
var aliases = map[string]string{
	"amd64": "x86_64",
	"x64":   "x86_64",
	"arm64": "aarch64",
}

// Lookup finds an architecture by kitrun, Go or Debian name.
func Lookup(name string) (Arch, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		n = a
	}
	if a, ok := table[n]; ok {
		return a, nil
	}
	return Arch{}, fmt.Errorf("unknown architecture %q; valid: %s", name, strings.Join(Names(), ", "))
}

// Host is the architecture kitrun itself runs on.
func Host() Arch {
	for _, a := range table {
		if a.GOARCH == runtime.GOARCH {
			return a
		}
	}
	return Arch{Name: runtime.GOARCH, GOARCH: runtime.GOARCH, Debian: runtime.GOARCH}
}

// Names lists the supported architectures in a stable order.
func Names() []string {
	var names []string
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns every supported architecture in a stable order.
func All() []Arch {
	var out []Arch
	for _, n := range Names() {
		out = append(out, table[n])
	}
	return out
}
