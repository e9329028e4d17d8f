package qemu

import (
	"context"
	"os/exec"

	"github.com/kitrun/kitrun/boot/arch"
)

// What the external tests (package qemu_test, which may import qemutest)
// need of the package's insides.

var (
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
	return probeAccel(ctx, "kvm", mt, binary, kernel)
}

func KVMUnusable(a arch.Arch) string { return kvmUnusable(a) }

func TSCHint(a arch.Arch, machine, accel string) []string {
	_, mt, _ := lookupMachine(a, machine)
	return tscHint(mt, accel)
}

// StartQEMU starts cmd as Start starts QEMU: it returns QEMU's pid.
func StartQEMU(cmd *exec.Cmd) (int, <-chan error, func() error, error) {
	p, err := startQEMU(cmd)
	if err != nil {
		return 0, nil, nil, err
	}
	return p.pid, p.waited, p.kill, nil
}

var HardwareAccel = hardwareAccel

// CPUFor is the -cpu model a machine type gets under accel.
func CPUFor(a arch.Arch, machine, accel string) string {
	_, mt, _ := lookupMachine(a, machine)
	return mt.cpuFor(accel)
}

// SetTCPStreams wires machines started from now on as on Windows (TCP on
// 127.0.0.1) or with socketpairs; it returns the previous setting.
func SetTCPStreams(on bool) bool {
	old := tcpStreams
	tcpStreams = on
	return old
}

// ResolveAccelWithBinary resolves want for a's default machine, with
// binary as QEMU (no probe runs for an explicit request).
func ResolveAccelWithBinary(b *Backend, a arch.Arch, want, binary string) (string, string, error) {
	name, mt, err := lookupMachine(a, "")
	if err != nil {
		return "", "", err
	}
	return b.resolveAccel(context.Background(), a, want, name, mt, binary, "/dev/null")
}
