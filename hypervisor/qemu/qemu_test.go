package qemu_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/floor"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestFloorBootsOurCpio boots the floor initramfs, written by kitrun's own
// cpio writer, in the real kernel: the kernel must unpack it, find /init
// and /dev/console, and run it to power-off.
func TestFloorBootsOurCpio(t *testing.T) {
	for _, archName := range arch.Names() {
		t.Run(archName, func(t *testing.T) {
			a := qemutest.Require(t, archName)
			k := qemutest.Kernel(t, a)
			initrd, err := floor.Build(context.Background(), a, qemutest.RepoRoot(t), assemble.DefaultCacheDir())
			if err != nil {
				t.Fatal(err)
			}
			img := &image.Image{Kernel: k.Image, Initrd: initrd, Cmdline: "quiet", Arch: a,
				Manifest: image.Manifest{Name: "floor", Platform: "qemu", Network: image.NetworkNone}}
			var console qemutest.Buffer
			v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, vm.Options{
				Resources: hypervisor.Resources{Accel: "tcg"}, Console: &console})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-v.Exited():
			case <-time.After(2 * time.Minute):
				v.Kill()
				t.Fatalf("floor did not power off; console:\n%s", console.String())
			}
			if err := v.Machine.Err(); err != nil {
				t.Fatalf("qemu: %v", err)
			}
			if !strings.Contains(console.String(), "floor: init") {
				t.Fatalf("floor init did not run; console:\n%s", console.String())
			}
			if v.ExitTime() <= 0 {
				t.Errorf("no exit time recorded")
			}
		})
	}
}

// TestAccelProbeOnThisHost runs the real probe: it must settle within a few
// seconds and say why. Where KVM works the answer is KVM; where /dev/kvm
// is missing or hangs guests (nested), TCG.
func TestAccelProbeOnThisHost(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	k := qemutest.Kernel(t, a)
	b := &qemu.Backend{ProbeCache: filepath.Join(t.TempDir(), "probe.json")}
	start := time.Now()
	accel, reason, err := qemu.ResolveAccel(b, context.Background(), a, "auto", "q35", k.Image)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto chose %s in %s: %s", accel, took.Round(time.Millisecond), reason)
	if reason == "" || (accel != "kvm" && accel != "tcg") {
		t.Fatalf("accel %q, reason %q", accel, reason)
	}
	if took > qemu.ProbeDeadline+2*time.Second {
		t.Errorf("probe took %s, deadline is %s", took, qemu.ProbeDeadline)
	}
	// The second call is answered at once: from the cache where a probe
	// ran, and from the device check again where there is no usable
	// /dev/kvm to probe (nothing is cached then).
	accel2, reason2, err := qemu.ResolveAccel(b, context.Background(), a, "auto", "q35", k.Image)
	if unusable := qemu.KVMUnusable(a); unusable != "" {
		if err != nil || accel2 != "tcg" || reason2 != unusable {
			t.Errorf("no usable /dev/kvm: got %s %q %v, want tcg %q", accel2, reason2, err, unusable)
		}
		if _, err := os.Stat(b.ProbeCache); err == nil {
			t.Error("a host without a usable /dev/kvm must not cache a probe it never ran")
		}
	} else if err != nil || accel2 != accel || !strings.Contains(reason2, "cached") {
		t.Errorf("cached probe: %s %q %v", accel2, reason2, err)
	}
}

// TestAccelProbeFallback drives the probe with stand-in QEMU binaries that
// behave as a broken KVM does: hang, or fail at once. Both must fall back
// to TCG with the reason; one that boots must give KVM. Only definite
// answers are kept for good: a hang expires, and a probe the caller cut
// short is no answer at all.
func TestAccelProbeFallback(t *testing.T) {
	a, _ := arch.Lookup("x86_64")
	cases := []struct {
		name, script, accel, reason string
		expires                     bool
	}{
		{"hangs", "exec sleep 60", "tcg", "did not boot within", true},
		{"fails", "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a' >&2; exit 1", "tcg", "failed to set MSR", false},
		{"boots", "exit 0", "kvm", "booted a kernel", false},
	}
	for _, mode := range teardownModes() {
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				t.Setenv(qemu.TeardownEnv, mode)
				bin := standIn(t, c.script)
				start := time.Now()
				r, err := qemu.ProbeKVM(context.Background(), a, bin, "/dev/null")
				if err != nil {
					t.Fatal(err)
				}
				if r.Accel != c.accel || !strings.Contains(r.Reason, c.reason) {
					t.Errorf("got %s (%s), want %s with %q", r.Accel, r.Reason, c.accel, c.reason)
				}
				if c.expires != !r.Expires.IsZero() {
					t.Errorf("expires = %v, want an expiry: %v", r.Expires, c.expires)
				}
				if c.expires && r.Expires.Sub(r.When) != qemu.HangRecheck {
					t.Errorf("a hang is believed for %s, want %s", r.Expires.Sub(r.When), qemu.HangRecheck)
				}
				if d := time.Since(start); d > qemu.ProbeDeadline+time.Second {
					t.Errorf("probe took %s", d)
				}
			})
		}
	}
	for _, mode := range teardownModes() {
		t.Run(mode+"/cancelled", func(t *testing.T) {
			t.Setenv(qemu.TeardownEnv, mode)
			bin := standIn(t, "exec sleep 60")
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if r, err := qemu.ProbeKVM(ctx, a, bin, "/dev/null"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a probe cut short by its caller must be no answer, got %+v, %v", r, err)
			}
		})
	}
}

// teardownModes are the ways QEMU can be kept from outliving kitrun here:
// the OS default and the portable watchdog.
func teardownModes() []string {
	if runtime.GOOS == "linux" {
		return []string{qemu.TeardownPdeathsig, qemu.TeardownWatchdog}
	}
	return []string{qemu.TeardownWatchdog}
}

func standIn(t *testing.T, script string) string {
	bin := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestTSCHint: microvm under TCG is told the TSC frequency (without it the
// kernel's PIT calibration fails on a loaded host and the boot hangs); q35,
// which has other timers, and KVM are left alone.
func TestTSCHint(t *testing.T) {
	a, _ := arch.Lookup("x86_64")
	if got := qemu.TSCHint(a, "q35", "tcg"); len(got) != 0 {
		t.Errorf("q35 got %q", got)
	}
	if got := qemu.TSCHint(a, "microvm", "kvm"); len(got) != 0 {
		t.Errorf("microvm under kvm got %q", got)
	}
	khz := qemu.HostTSCkHz()
	if runtime.GOARCH != "amd64" {
		if khz != 0 {
			t.Errorf("TSC of a %s host: %d", runtime.GOARCH, khz)
		}
		return
	}
	if khz < 100_000 || khz > 10_000_000 {
		t.Fatalf("host TSC %d kHz is not plausible", khz)
	}
	if got := qemu.TSCHint(a, "microvm", "tcg"); strings.Join(got, " ") != fmt.Sprintf("tsc_early_khz=%d", khz) {
		t.Errorf("microvm under tcg got %q", got)
	}
}
