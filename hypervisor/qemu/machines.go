package qemu

import (
	"fmt"
	"strings"
)

// machineType is how QEMU makes one machine type of one arch. What the guest
// sees of it (device names, modules) is in boot/arch; this row must agree.
type machineType struct {
	binary string
	// machine is the -machine value.
	machine string
	// cpu maps an accelerator to the -cpu model used with it.
	cpu map[string]string
	// channel wires the event channel's chardev into a guest device.
	channel func(chardev string) []string
	// nic adds a NIC on a netdev.
	nic func(netdev string) []string
	// extra devices every boot gets (pvpanic where the kernel has it).
	extra []string
	// pvpanic: the guest kernel reports panics to the VMM.
	pvpanic bool
	// tscHint: the machine has no timer (HPET, ACPI PM) the kernel can
	// calibrate the TSC against besides the PIT, and under TCG on a busy
	// host that calibration fails and the boot hangs (seen on microvm).
	// The kernel is then told the TSC frequency (tsc_early_khz).
	tscHint bool
	// timerCheck: the kernel verifies the timer interrupt through the
	// IO-APIC at boot and panics ("IO-APIC + timer doesn't work") when a
	// loaded host delays the emulated timer under TCG; no_timer_check
	// skips that test, as cloud images do.
	timerCheck bool
}

func secondSerial(chardev string) []string { return []string{"-serial", "chardev:" + chardev} }

func virtconsoleMMIO(chardev string) []string {
	return []string{"-device", "virtio-serial-device", "-device", "virtconsole,chardev=" + chardev}
}

func nicPCI(netdev string) []string { return []string{"-device", "virtio-net-pci,netdev=" + netdev} }
func nicMMIO(netdev string) []string {
	return []string{"-device", "virtio-net-device,netdev=" + netdev}
}

// machines is keyed by arch name, then machine name.
var machines = map[string]map[string]machineType{
	"x86_64": {
		"q35": {
			binary:     "qemu-system-x86_64",
			machine:    "q35",
			cpu:        map[string]string{"tcg": "qemu64", "kvm": "host"},
			channel:    secondSerial,
			nic:        nicPCI,
			extra:      []string{"-device", "pvpanic"},
			pvpanic:    true,
			timerCheck: true,
		},
		"microvm": {
			binary:     "qemu-system-x86_64",
			machine:    "microvm",
			cpu:        map[string]string{"tcg": "qemu64", "kvm": "host"},
			channel:    virtconsoleMMIO,
			nic:        nicMMIO,
			tscHint:    true,
			timerCheck: true,
		},
	},
	"aarch64": {
		"virt": {
			binary:  "qemu-system-aarch64",
			machine: "virt",
			// -cpu max emulates pointer authentication expensively under
			// TCG; cortex-a57 boots the same kernel markedly faster.
			cpu:     map[string]string{"tcg": "cortex-a57", "kvm": "host"},
			channel: virtconsoleMMIO,
			nic:     nicMMIO,
		},
	},
}

func lookupMachine(archName, name string) (machineType, error) {
	byName, ok := machines[archName]
	if !ok {
		return machineType{}, fmt.Errorf("the QEMU backend has no machines for %s", archName)
	}
	mt, ok := byName[name]
	if !ok {
		var names []string
		for n := range byName {
			names = append(names, n)
		}
		return machineType{}, fmt.Errorf("the QEMU backend has no machine %q for %s; valid: %s", name, archName, strings.Join(names, ", "))
	}
	return mt, nil
}
