package qemu

import (
	"fmt"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
)

// machineType is one machine type of one arch: what the guest sees of it
// (its platform hardware) and how QEMU makes it. One row holds both, so the
// two cannot disagree.
type machineType struct {
	hw     platform.Hardware
	binary string
	// machine is the -machine value.
	machine string
	// cpu maps an accelerator to the -cpu model used with it.
	cpu map[string]string
	// console wires the console's chardev into a guest device (nil: the
	// first serial port, -serial).
	console func(chardev string) []string
	// channel wires the event channel's chardev into a guest device.
	channel func(chardev string) []string
	// nic adds a NIC on a netdev.
	nic func(netdev string) []string
	// extra devices every boot gets (pvpanic where the kernel has it).
	extra []string
	// tscHint: the machine has no timer (HPET, ACPI PM) the kernel can
	// calibrate the TSC against besides the PIT, and under TCG on a busy
	// host that calibration fails and the boot hangs (seen on microvm).
	// The kernel is then told the TSC frequency (tsc_early_khz).
	tscHint bool
	// pvh: direct kernel boots enter a PVH kernel at its ELF entry point
	// instead of decompressing the bzImage (see pvh.go).
	pvh bool
	// powerKey: QMP's system_powerdown reaches no guest device on this
	// machine (QEMU 7.2's riscv64 virt has neither ACPI nor a GPIO power
	// key), so the power button is the power key of a virtio keyboard
	// (extra must add one, and PowerModules load its driver), pressed with
	// input-send-event; kitinit reads KEY_POWER from the event device.
	powerKey bool
	// firmware boots disk images: BIOS and EFI code (and EFI variables
	// template) from Debian's seabios, ovmf and qemu-efi-aarch64.
	bios string // "" is QEMU's default (SeaBIOS on x86); "none": no BIOS boot
	// firmware is what every boot loads before the kernel (riscv64's
	// OpenSBI, from Debian's opensbi package rather than QEMU's copy, so
	// that `make deps` pins it): -bios FILE.
	firmware string
	efiCode  string
	efiVars  string
	// disk and cdrom attach a drive (by its -drive id).
	disk  func(id string) []string
	cdrom func(id string) []string
	// snapshotSince is the first QEMU release whose migration stream holds
	// all the state this machine's guest relies on; older releases restore
	// guests that stall later, so they get no snapshots. Zero: any release.
	snapshotSince qemuRelease
	// snapshotGap says what older releases leave out of the stream.
	snapshotGap string
	// snapshotStalledOn is the newest release on which restored guests of
	// this machine were seen to stall, with no QEMU change known to fix
	// it (snapshotStall says how): it and older releases get no
	// snapshots; newer ones, untried, do.
	snapshotStalledOn qemuRelease
	snapshotStall     string
}

func secondSerial(chardev string) []string { return []string{"-serial", "chardev:" + chardev} }

func virtconsoleMMIO(chardev string) []string {
	return []string{"-device", "virtio-serial-device", "-device", "virtconsole,chardev=" + chardev}
}

func serialConsole(chardev string) []string { return []string{"-serial", "chardev:" + chardev} }

func virtconsolePCI(chardev string) []string {
	return []string{"-device", "virtio-serial-pci", "-device", "virtconsole,chardev=" + chardev}
}

// s390x: the console is the SCLP's ASCII (VT220) console, built into the
// kernel; the channel a virtconsole on virtio-ccw, whose transport is
// built in too.
func sclpConsole(chardev string) []string {
	return []string{"-device", "sclpconsole,chardev=" + chardev}
}

func virtconsoleCCW(chardev string) []string {
	return []string{"-device", "virtio-serial-ccw", "-device", "virtconsole,chardev=" + chardev}
}

func nicCCW(netdev string) []string { return []string{"-device", "virtio-net-ccw,netdev=" + netdev} }

// pseries: the console and the channel are two PAPR virtual terminals
// (hvc0, hvc1), whose driver is built into the kernel; reg is the vty's
// unit address, and the lower one is the console.
func vtyConsole(chardev string) []string {
	return []string{"-device", "spapr-vty,reg=0x71000010,chardev=" + chardev}
}

func vtyChannel(chardev string) []string {
	return []string{"-device", "spapr-vty,reg=0x71000011,chardev=" + chardev}
}

func nicPCI(netdev string) []string { return []string{"-device", "virtio-net-pci,netdev=" + netdev} }
func nicMMIO(netdev string) []string {
	return []string{"-device", "virtio-net-device,netdev=" + netdev}
}

func diskPCI(id string) []string  { return []string{"-device", "virtio-blk-pci,drive=" + id} }
func cdromIDE(id string) []string { return []string{"-device", "ide-cd,drive=" + id + ",bus=ide.0"} }
func cdromSCSI(id string) []string {
	return []string{"-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,drive=" + id + ",bus=scsi0.0"}
}

// userNetwork is QEMU's user-mode network as the guest sees it: the
// guest's address, the gateway and the DNS server slirp provides.
var userNetwork = platform.Network{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3"}

// x86 under TCG: the kernel verifies the timer interrupt through the
// IO-APIC at boot and panics ("IO-APIC + timer doesn't work") when a loaded
// host delays the emulated timer; no_timer_check skips that test, as cloud
// images do.
var x86Args = append([]string{"no_timer_check"}, commonArgs...)

// nosoftlockup: a vCPU that the host did not schedule for a while is not a
// guest kernel that locked up, but the watchdog reports a "BUG: soft
// lockup" (seen under TCG on a loaded host, with a clock that jumped).
var commonArgs = []string{"nosoftlockup"}

// machines is keyed by arch name, then machine name.
var machines = map[string]map[string]machineType{
	"x86_64": {
		"q35": {
			// q35 finds a second 16550 through ACPI, so its channel
			// needs no module.
			hw: platform.Hardware{
				Console: "ttyS0", Channel: "/dev/ttyS1",
				NICModules:   []string{"virtio_pci", "virtio_net"},
				PanicModules: []string{"pvpanic_mmio"},
				KernelArgs:   x86Args,
				DiskSeed:     initproto.SeedFwCfg,
				SeedModules:  []string{"qemu_fw_cfg"},
			},
			binary:  "qemu-system-x86_64",
			machine: "q35",
			cpu:     map[string]string{"tcg": "qemu64", "kvm": "host"},
			channel: secondSerial,
			nic:     nicPCI,
			pvh:     true,
			extra:   []string{"-device", "pvpanic"},
			efiCode: "/usr/share/OVMF/OVMF_CODE_4M.fd",
			efiVars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
			disk:    diskPCI,
			cdrom:   cdromIDE,
		},
		"microvm": {
			// microvm describes only one UART: the channel is
			// virtio-console on virtio-mmio.
			hw: platform.Hardware{
				Console: "ttyS0", Channel: "/dev/hvc0",
				ChannelModules: []string{"virtio_mmio", "virtio_console"},
				NICModules:     []string{"virtio_mmio", "virtio_net"},
				KernelArgs:     x86Args,
			},
			binary:  "qemu-system-x86_64",
			machine: "microvm",
			cpu:     map[string]string{"tcg": "qemu64", "kvm": "host"},
			channel: virtconsoleMMIO,
			nic:     nicMMIO,
			tscHint: true,
			pvh:     true,
			bios:    "none", // microvm boots kernels only
		},
	},
	"aarch64": {
		"virt": {
			// virt has one PL011; the channel is virtio-console on
			// virtio-mmio, which needs fewer modules than PCI.
			hw: platform.Hardware{
				Console: "ttyAMA0", Channel: "/dev/hvc0",
				ChannelModules: []string{"virtio_mmio", "virtio_console"},
				NICModules:     []string{"virtio_mmio", "virtio_net"},
				DiskSeed:       initproto.SeedFwCfg,
				SeedModules:    []string{"qemu_fw_cfg"},
				KernelArgs:     commonArgs,
			},
			binary:  "qemu-system-aarch64",
			machine: "virt",
			// -cpu max emulates pointer authentication expensively under
			// TCG; cortex-a57 boots the same kernel markedly faster.
			cpu:     map[string]string{"tcg": "cortex-a57", "kvm": "host"},
			channel: virtconsoleMMIO,
			nic:     nicMMIO,
			bios:    "none",
			efiCode: "/usr/share/AAVMF/AAVMF_CODE.fd",
			efiVars: "/usr/share/AAVMF/AAVMF_VARS.fd",
			disk:    diskPCI,
			cdrom:   cdromSCSI,
		},
	},
	"riscv64": {
		"virt": {
			// virt has one 16550 and a PCI host bridge; Debian 13's
			// kernel builds virtio-pci and virtio-console in, so the
			// channel (virtio-console on PCI) needs no module.
			hw: platform.Hardware{
				Console: "ttyS0", Channel: "/dev/hvc0",
				NICModules:   []string{"virtio_net"},
				PowerModules: []string{"virtio_input"},
				KernelArgs:   commonArgs,
			},
			binary:   "qemu-system-riscv64",
			machine:  "virt",
			cpu:      map[string]string{"tcg": "rv64", "kvm": "host"},
			channel:  virtconsolePCI,
			nic:      nicPCI,
			extra:    []string{"-device", "virtio-keyboard-pci"},
			powerKey: true,
			firmware: "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin",
			bios:     "none",
			// Seen in CI on 7.2: a restored guest ran for a while, then
			// an SSH command stalled for 30 s. QEMU 10.2 added the ACLINT
			// timers and the Sstc stimecmp timer to the stream ("Save
			// stimer and vstimer in CPU vmstate", not backported).
			snapshotSince: qemuRelease{10, 2},
			snapshotGap:   "the timer armed at the save (ACLINT mtimecmp, Sstc stimecmp)",
		},
	},
	"s390x": {
		"s390-ccw-virtio": {
			hw: platform.Hardware{
				Console: "ttysclp0", Channel: "/dev/hvc0",
				ChannelModules: []string{"virtio_console"},
				NICModules:     []string{"virtio_net"},
				KernelArgs:     commonArgs,
			},
			binary:  "qemu-system-s390x",
			machine: "s390-ccw-virtio",
			cpu:     map[string]string{"tcg": "qemu", "kvm": "host"},
			console: sclpConsole,
			channel: virtconsoleCCW,
			nic:     nicCCW,
			bios:    "none",
			// Seen in make test on 7.2 (TCG): some saved states restore a
			// guest whose SSH server never sends its banner, every time
			// that state is restored, while kitinit still answers on the
			// channel; other states of the same image restore fine.
			// Not pinned to a QEMU change.
			snapshotStalledOn: qemuRelease{7, 2},
			snapshotStall:     "some saved states restore a guest whose SSH server never answers",
		},
	},
	"ppc64le": {
		"pseries": {
			hw: platform.Hardware{
				Console: "hvc0", Channel: "/dev/hvc1",
				NICModules: []string{"virtio_pci", "virtio_net"},
				KernelArgs: commonArgs,
			},
			binary: "qemu-system-ppc64",
			// x-vof: QEMU's own minimal Open Firmware instead of SLOF,
			// which a kernel booted directly does not need. The cap-*
			// settings turn off the Spectre mitigations TCG cannot
			// emulate (QEMU warns about each otherwise).
			machine: "pseries,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off",
			cpu:     map[string]string{"tcg": "power9", "kvm": "host"},
			console: vtyConsole,
			channel: vtyChannel,
			nic:     nicPCI,
			bios:    "none",
			// Seen in make test on 7.2: the same 30 s stall of an SSH
			// command after a restore as on riscv64. Under TCG QEMU kept
			// the decrementer outside the migrated SPRs and did not
			// re-arm its timer on load until "target/ppc: Migrate DECR
			// SPR", in 8.2.
			snapshotSince: qemuRelease{8, 2},
			snapshotGap:   "the decrementer (the guest's timer interrupt)",
		},
	},
}

// defaultMachine is each arch's default machine type.
var defaultMachine = map[string]string{
	"x86_64": "q35", "aarch64": "virt", "riscv64": "virt", "s390x": "s390-ccw-virtio", "ppc64le": "pseries",
}

// platformOf is the QEMU platform of arch a.
func platformOf(a arch.Arch) (platform.Platform, error) {
	byName, ok := machines[a.Name]
	if !ok {
		return platform.Platform{}, fmt.Errorf("the QEMU backend has no machines for %s", a.Name)
	}
	p := platform.Platform{
		Name: "qemu", Arch: a, Machines: map[string]platform.Hardware{},
		DefaultMachine: defaultMachine[a.Name], Network: userNetwork,
	}
	for n, mt := range byName {
		p.Machines[n] = mt.hw
	}
	return p, nil
}

// lookupMachine finds a machine type ("" is the arch's default).
func lookupMachine(a arch.Arch, name string) (string, machineType, error) {
	p, err := platformOf(a)
	if err != nil {
		return "", machineType{}, err
	}
	name, _, err = p.Machine(name)
	if err != nil {
		return "", machineType{}, err
	}
	return name, machines[a.Name][name], nil
}

// BinaryName is the QEMU system emulator that runs arch a's default machine
// ("qemu-system-riscv64"), for callers that check it is installed.
func BinaryName(a arch.Arch) (string, error) {
	_, mt, err := lookupMachine(a, "")
	if err != nil {
		return "", err
	}
	return mt.binary, nil
}
