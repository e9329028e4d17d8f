package hyperv

import (
	"fmt"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
)

// Machine types.
const (
	// MachineGen2 is a Hyper-V generation 2 VM: UEFI, VMBus devices.
	MachineGen2 = "gen2"
	// MachineGen2QEMU is what the test double's QEMU shows a guest in
	// place of a generation 2 VM (hardware=qemu): the same UEFI boot and
	// 16550 COM ports, but QEMU's virtio NIC and ACPI power button, since
	// QEMU emulates no VMBus. Only a backend opened with hardware=qemu
	// declares it.
	MachineGen2QEMU = "gen2-qemu"
)

// gen2 is what Linux sees in a generation 2 VM (checked against Debian's
// cloud-amd64 6.1 kernel: CONFIG_HYPERV=m, CONFIG_SERIAL_8250=y).
//
//   - Console and channel are COM1 and COM2. Generation 2 firmware
//     describes the COM ports in ACPI (PNP0501) as 16550 UARTs, which the
//     built-in 8250 driver takes as ttyS0 and ttyS1: no module. Two ports
//     rather than one shared: the channel then carries kitinit's commands
//     too (poweroff, memory), which a shared console cannot
//     (initproto.ChannelConsole), and `kitrun bench` asks for the guest's
//     memory over it.
//   - hv_vmbus is the bus every synthetic device hangs on. It is loaded at
//     every boot as the panic module: it reports a guest kernel panic to
//     Hyper-V through the crash MSRs (the VM's event log shows it). As a
//     panic module it could wait until all-ready, but hyperv_keyboard
//     (below) needs it before the channel opens.
//   - The power button is Ctrl+Alt+Del on the synthetic keyboard
//     (hyperv_keyboard, a serio port for the built-in atkbd; the VT layer
//     is built in): kitinit turns Ctrl+Alt+Del into SIGINT to itself
//     (CAD_OFF) and powers off gracefully. Not the shutdown integration
//     service (hv_utils, what Stop-VM uses): its guest side calls
//     orderly_poweroff, which runs /sbin/poweroff, absent from kitrun's
//     images, and then powers the kernel off at once, racing kitinit's
//     own shutdown (onshutdown tasks, services stopped) started by the
//     poweroff command on the channel. So hv_utils is not loaded, and
//     Stop-VM without -TurnOff fails on these guests.
//   - hv_netvsc is the synthetic NIC. hv_storvsc (the SCSI disk) is not
//     needed to boot: the unified kernel image in the disk's EFI partition
//     carries the initramfs, and kitinit runs from RAM without mounting
//     the disk. It is loaded on a disk boot only to read the seed disk.
var gen2 = platform.Hardware{
	Console: "ttyS0,115200", Channel: "/dev/ttyS1",
	PanicModules: []string{"hv_vmbus"},
	PowerModules: []string{"hyperv_keyboard"},
	NICModules:   []string{"hv_vmbus", "hv_netvsc"},
	KernelArgs:   []string{"nosoftlockup"},
	// Per-boot files come on a seed disk (seed.go): Hyper-V has no fw_cfg
	// and no metadata service. It is a SCSI disk on the synthetic
	// controller, so storvsc and the SCSI disk driver (both =m in
	// Debian's cloud kernel; scsi_mod comes by modules.dep) are loaded on
	// a disk boot.
	DiskSeed:    initproto.SeedDisk,
	SeedModules: []string{"hv_vmbus", "hv_storvsc", "sd_mod"},
}

// gen2QEMU is gen2 as the test double's QEMU (q35, OVMF, TCG) gives it:
// the same COM ports, a virtio NIC, Ctrl+Alt+Del on the PS/2 keyboard
// (i8042 and atkbd are built in), no VMBus. The TCG arguments are QEMU's
// (hypervisor/qemu).
var gen2QEMU = platform.Hardware{
	Console: "ttyS0,115200", Channel: "/dev/ttyS1",
	NICModules: []string{"virtio_pci", "virtio_net"},
	KernelArgs: []string{"no_timer_check", "nosoftlockup"},
	// The fake attaches the seed disk as a read-only virtio-blk drive.
	DiskSeed:    initproto.SeedDisk,
	SeedModules: []string{"virtio_pci", "virtio_blk"},
}

// platformOf is the hyperv platform of arch a. Only x86_64: Hyper-V on
// Windows on Arm runs aarch64 guests, but nothing here was checked there
// (its COM ports are PL011s, not 16550s), so it is not declared.
func platformOf(a arch.Arch, qemuHardware bool) (platform.Platform, error) {
	if a.Name != "x86_64" {
		return platform.Platform{}, fmt.Errorf("the hyperv backend has no machines for %s; valid: x86_64", a.Name)
	}
	p := platform.Platform{
		Name: "hyperv", Arch: a, DefaultMachine: MachineGen2,
		Machines: map[string]platform.Hardware{MachineGen2: gen2},
		// Empty: kitinit leases the NIC's configuration by DHCP from the
		// switch (Hyper-V's Default Switch serves DHCP and NAT).
		Network: platform.Network{},
	}
	if qemuHardware {
		p.DefaultMachine = MachineGen2QEMU
		// DHCP too: QEMU's user networking serves it, as the Default
		// Switch does.
		p.Machines = map[string]platform.Hardware{MachineGen2QEMU: gen2QEMU}
	}
	return p, nil
}
