package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/floor"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestFloorBootsOurCpio boots the floor initramfs, written by kitrun's own
// cpio writer, in the real kernel: the kernel must unpack it, find /init
// and /dev/console, and run it to power-off.
func TestFloorBootsOurCpio(t *testing.T) {
	for _, archName := range []string{"x86_64", "aarch64"} {
		t.Run(archName, func(t *testing.T) {
			a := qemutest.Require(t, archName)
			k := qemutest.Kernel(t, a)
			initrd, err := floor.Build(context.Background(), a, qemutest.RepoRoot(t), assemble.DefaultCacheDir())
			if err != nil {
				t.Fatal(err)
			}
			var console qemutest.Buffer
			m, err := (&Backend{}).Start(context.Background(), hypervisor.Config{
				Arch: a, Accel: "tcg", Kernel: k.Image, Initrd: initrd, Cmdline: "quiet", Console: &console,
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-m.Done():
			case <-time.After(2 * time.Minute):
				m.Kill()
				t.Fatalf("floor did not power off; console:\n%s", console.String())
			}
			if err := m.Err(); err != nil {
				t.Fatalf("qemu: %v", err)
			}
			if !strings.Contains(console.String(), "floor: init") {
				t.Fatalf("floor init did not run; console:\n%s", console.String())
			}
		})
	}
}

// TestAccelProbeOnThisHost runs the real probe: it must settle within a few
// seconds and say why. On these machines /dev/kvm exists but hangs 64-bit
// guests, so the answer here is TCG; where KVM works it is KVM.
func TestAccelProbeOnThisHost(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	k := qemutest.Kernel(t, a)
	b := &Backend{ProbeCache: filepath.Join(t.TempDir(), "probe.json")}
	mt, _ := lookupMachine("x86_64", "q35")
	bin, err := b.findBinary(mt.binary)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hypervisor.Config{Arch: a, Accel: "auto", Kernel: k.Image}
	start := time.Now()
	accel, reason, err := b.resolveAccel(context.Background(), cfg, "q35", mt, bin)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto chose %s in %s: %s", accel, took.Round(time.Millisecond), reason)
	if reason == "" || (accel != "kvm" && accel != "tcg") {
		t.Fatalf("accel %q, reason %q", accel, reason)
	}
	if took > probeDeadline+2*time.Second {
		t.Errorf("probe took %s, deadline is %s", took, probeDeadline)
	}
	// The second call is answered at once: from the cache where a probe
	// ran, and from the device check again where there is no usable
	// /dev/kvm to probe (nothing is cached then).
	start = time.Now()
	accel2, reason2, err := b.resolveAccel(context.Background(), cfg, "q35", mt, bin)
	if unusable := kvmUnusable(a); unusable != "" {
		if err != nil || accel2 != "tcg" || reason2 != unusable {
			t.Errorf("no usable /dev/kvm: got %s %q %v, want tcg %q", accel2, reason2, err, unusable)
		}
		if _, err := os.Stat(b.ProbeCache); err == nil {
			t.Error("a host without a usable /dev/kvm must not cache a probe it never ran")
		}
	} else if err != nil || accel2 != accel || !strings.Contains(reason2, "cached") {
		t.Errorf("cached probe: %s %q %v", accel2, reason2, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("cached probe took %s", d)
	}
}

// TestAccelProbeFallback drives the probe with stand-in QEMU binaries that
// behave as a broken KVM does: hang, or fail at once. Both must fall back
// to TCG with the reason; one that boots must give KVM.
func TestAccelProbeFallback(t *testing.T) {
	cases := []struct {
		name, script, accel, reason string
	}{
		{"hangs", "exec sleep 60", "tcg", "did not boot within"},
		{"fails", "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a' >&2; exit 1", "tcg", "failed to set MSR"},
		{"boots", "exit 0", "kvm", "booted a kernel"},
	}
	mt, _ := lookupMachine("x86_64", "q35")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "qemu-system-x86_64")
			if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+c.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := probeKVM(context.Background(), hypervisor.Config{Kernel: "/dev/null"}, mt, bin)
			if r.Accel != c.accel || !strings.Contains(r.Reason, c.reason) {
				t.Errorf("got %s (%s), want %s with %q", r.Accel, r.Reason, c.accel, c.reason)
			}
			if d := time.Since(start); d > probeDeadline+time.Second {
				t.Errorf("probe took %s", d)
			}
		})
	}
}

func TestKernelCmdlineWiring(t *testing.T) {
	q35 := archHardware{Console: "ttyS0", Channel: "/dev/ttyS1", NICModules: []string{"virtio_pci", "virtio_net"}}
	got := kernelCmdline("quiet", q35, false, true)
	want := "quiet console=ttyS0 panic=-1 kitrun.channel=/dev/ttyS1"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got = kernelCmdline("", q35, true, true)
	if !strings.HasSuffix(got, "kitrun.chanmods=virtio_pci,virtio_net") {
		t.Errorf("network modules missing: %q", got)
	}
	if got := kernelCmdline("", q35, false, false); strings.Contains(got, "kitrun.channel") {
		t.Errorf("channel wired though off: %q", got)
	}
}

// TestTSCHint: microvm under TCG is told the TSC frequency (without it the
// kernel's PIT calibration fails on a loaded host and the boot hangs); q35,
// which has other timers, and KVM are left alone.
func TestTSCHint(t *testing.T) {
	microvm, _ := lookupMachine("x86_64", "microvm")
	q35, _ := lookupMachine("x86_64", "q35")
	if got := tscHint(q35, "tcg"); got != " no_timer_check" {
		t.Errorf("q35 got %q", got)
	}
	if got := tscHint(microvm, "kvm"); got != "" {
		t.Errorf("microvm under kvm got %q", got)
	}
	khz := hostTSCkHz()
	if runtime.GOARCH != "amd64" {
		if khz != 0 {
			t.Errorf("TSC of a %s host: %d", runtime.GOARCH, khz)
		}
		return
	}
	if khz < 100_000 || khz > 10_000_000 {
		t.Fatalf("host TSC %d kHz is not plausible", khz)
	}
	if got := tscHint(microvm, "tcg"); got != fmt.Sprintf(" no_timer_check tsc_early_khz=%d", khz) {
		t.Errorf("microvm under tcg got %q", got)
	}
}
