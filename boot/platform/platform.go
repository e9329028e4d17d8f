// Package platform describes what a guest sees of the machines a backend
// gives it: the console device, the device of kitinit's event channel (or
// that the channel shares the console), the kernel modules without which
// those devices and the NIC do not exist, the kernel arguments the wiring
// needs, and the network the platform provides. A platform is an input of
// the build: the assembler puts in the modules and the network
// configuration the platform needs, and disk images carry its kernel
// command line. Each hypervisor backend declares its platforms (QEMU's are
// in hypervisor/qemu); the image side never names a backend's devices
// itself.
package platform

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
)

// Platform is one backend's machines for one architecture.
type Platform struct {
	// Name is the backend's name ("qemu"); images record it.
	Name string
	Arch arch.Arch
	// Machines is what the guest sees on each machine type, by name;
	// DefaultMachine is used when none is asked for.
	Machines       map[string]Hardware
	DefaultMachine string
	// Network is what `network: auto` gives the guest on this platform.
	Network Network
}

// Hardware is the guest's view of one machine type.
type Hardware struct {
	// Console is the kernel console device (console=...).
	Console string
	// Channel is the guest device of kitinit's event channel. Empty means
	// the channel shares the console: kitinit then writes its events,
	// framed and checksummed, among the console's lines.
	Channel string
	// ChannelModules must be loaded before Channel exists.
	ChannelModules []string
	// NICModules must be loaded before the first NIC exists.
	NICModules []string
	// PanicModules drive a paravirtual panic device, through which the
	// kernel tells the hypervisor it panicked (a report no guest program
	// can fake). kitinit loads them once the boot has settled
	// (initproto.ParamLateModules), or earlier as another module's
	// dependency.
	PanicModules []string
	// PowerModules drive the platform's power button where it is not
	// ACPI's (on Hyper-V, Ctrl+Alt+Del on the synthetic keyboard:
	// hyperv_keyboard); loaded at every boot, before the channel opens.
	PowerModules []string
	// KernelArgs are added to every command line on this machine (for
	// example what the platform's emulated timers need).
	KernelArgs []string
	// DiskSeed is how a boot from a disk image (which cannot take an
	// appended initramfs) gets its per-boot files: a value of
	// initproto.ParamSeed, with SeedModules loaded first. Empty: a disk
	// boot on this machine gets none.
	DiskSeed    string
	SeedModules []string
}

// Network is how the guest's first NIC is configured.
type Network struct {
	// Address (CIDR), Gateway and DNS configure the NIC statically.
	// An empty Address means the platform has no static layout: kitinit
	// then leases the NIC's configuration by DHCP, which clouds and
	// Hyper-V's Default Switch provide.
	Address string
	Gateway string
	DNS     string
}

// MachineNames lists the machine types, default first.
func (p Platform) MachineNames() []string {
	names := []string{p.DefaultMachine}
	var rest []string
	for n := range p.Machines {
		if n != p.DefaultMachine {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// Machine returns a machine type's name and hardware ("" is the default).
func (p Platform) Machine(name string) (string, Hardware, error) {
	if name == "" {
		name = p.DefaultMachine
	}
	hw, ok := p.Machines[name]
	if !ok {
		return "", Hardware{}, fmt.Errorf("%s has no machine %q for %s; valid: %s", p.Name, name, p.Arch.Name, strings.Join(p.MachineNames(), ", "))
	}
	return name, hw, nil
}

// Modules lists the modules kitrun's own devices need on any machine of
// the platform (the channel's, and with network the NIC's), sorted and
// without repeats: the image holds them all and kitinit loads only the
// booted machine's share.
func (p Platform) Modules(network bool) []string {
	var mods []string
	for _, hw := range p.Machines {
		mods = append(mods, hw.ChannelModules...)
		mods = append(mods, hw.PanicModules...)
		mods = append(mods, hw.PowerModules...)
		mods = append(mods, hw.SeedModules...)
		if network {
			mods = append(mods, hw.NICModules...)
		}
	}
	sort.Strings(mods)
	return slices.Compact(mods)
}

// Wiring says what a command line must wire up.
type Wiring struct {
	// Network: the guest has a NIC whose modules must be loaded.
	Network bool
	// NoChannel leaves kitinit's event channel off (to measure what the
	// channel itself costs).
	NoChannel bool
	// Disk: the command line is a disk image's, which gets its per-boot
	// files from the machine's DiskSeed.
	Disk bool
}

// Cmdline is the kernel command line of a boot on this hardware: the
// image's own command line, then the console, panic handling, kitinit's
// channel and the modules it must load first, then the machine's own
// arguments.
func (h Hardware) Cmdline(image string, w Wiring) string {
	parts := []string{}
	if s := strings.TrimSpace(image); s != "" {
		parts = append(parts, s)
	}
	parts = append(parts,
		"console="+h.Console,
		// A panicking guest reboots at once, which the hypervisor turns
		// into the machine's exit: a panic never hangs a run.
		"panic=-1",
		// Guest programs may not write into the kernel's log: a line
		// there would reach the console looking like the kernel's own.
		"printk.devkmsg=off")
	mods := append([]string(nil), h.PowerModules...)
	if !w.NoChannel {
		channel := h.Channel
		if channel == "" {
			channel = initproto.ChannelConsole
		}
		parts = append(parts, initproto.ParamChannel+"="+channel)
		mods = append(mods, h.ChannelModules...)
	}
	extra := []string(nil)
	if w.Network {
		extra = append(extra, h.NICModules...)
	}
	// A seed fetched over the network needs one: without it the boot
	// would only wait for a seed it cannot get.
	if w.Disk && h.DiskSeed != "" && (w.Network || !initproto.SeedOverNetwork(h.DiskSeed)) {
		extra = append(extra, h.SeedModules...)
		parts = append(parts, initproto.ParamSeed+"="+h.DiskSeed)
	}
	for _, m := range extra {
		if !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	if len(mods) > 0 {
		parts = append(parts, initproto.ParamChannelModules+"="+strings.Join(mods, ","))
	}
	// Nothing before all-ready needs the panic device: a panic in the
	// boot is still seen, on the console and as the guest's reset
	// (panic=-1), and its module's load would delay the services.
	if len(h.PanicModules) > 0 {
		parts = append(parts, initproto.ParamLateModules+"="+strings.Join(h.PanicModules, ","))
	}
	parts = append(parts, h.KernelArgs...)
	return strings.Join(parts, " ")
}
