package qemu

import (
	"context"

	"github.com/kitrun/kitrun/boot/arch"
)

// What the external tests (package qemu_test, which may import qemutest)
// need of the package's insides.

var (
	StartLocked      = startLocked
	GuestRAMResident = guestRAMResident
	HostMemoryOf     = hostMemory
	HostTSCkHz       = hostTSCkHz
	ProbeDeadline    = probeDeadline
	HangRecheck      = hangRecheck
)

// ProbeResult is a probe's answer.
type ProbeResult = probeResult

func ResolveAccel(b *Backend, ctx context.Context, a arch.Arch, want, machine, kernel string) (string, string, error) {
	name, mt, err := lookupMachine(a, machine)
	if err != nil {
		return "", "", err
	}
	bin, err := b.findBinary(mt.binary)
	if err != nil {
		return "", "", err
	}
	return b.resolveAccel(ctx, a, want, name, mt, bin, kernel)
}

func ProbeKVM(ctx context.Context, a arch.Arch, binary, kernel string) (ProbeResult, error) {
	_, mt, err := lookupMachine(a, "")
	if err != nil {
		return ProbeResult{}, err
	}
	return probeKVM(ctx, mt, binary, kernel)
}

func KVMUnusable(a arch.Arch) string { return kvmUnusable(a) }

func TSCHint(a arch.Arch, machine, accel string) []string {
	_, mt, _ := lookupMachine(a, machine)
	return tscHint(mt, accel)
}
