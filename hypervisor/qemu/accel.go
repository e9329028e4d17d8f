package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
)

// probeDeadline is how long a hardware-accelerated boot may take to reach
// the kernel's root-mount panic. Where the accelerator works that takes
// well under a second; where it is broken (nested virtualisation that hangs
// 64-bit guests under KVM) the probe gives up here and kitrun falls back to
// TCG.
const probeDeadline = 3 * time.Second

// Accelerators. Each host OS has one hardware accelerator QEMU can use:
// KVM on Linux, Hypervisor.framework (hvf) on macOS, the Windows Hypervisor
// Platform (whpx) on Windows. TCG (emulation) runs everywhere.
var hardwareAccels = map[string]string{"linux": "kvm", "darwin": "hvf", "windows": "whpx"}

// validAccels is what --accel takes.
const validAccels = "auto, kvm, hvf, whpx, tcg"

// hardwareAccel says which hardware accelerator auto tries on a goos host
// of arch host for a guest of arch guest, or "" and why none. All of them
// run guests of the host's own architecture only; whpx only x86_64 ones.
func hardwareAccel(goos string, host, guest arch.Arch) (string, string) {
	hw := hardwareAccels[goos]
	switch {
	case hw == "":
		return "", fmt.Sprintf("QEMU has no hardware accelerator kitrun knows on %s", goos)
	case guest.GOARCH != host.GOARCH:
		return "", fmt.Sprintf("%s cannot run %s guests on a %s host", strings.ToUpper(hw), guest.Name, host.Name)
	case hw == "whpx" && host.GOARCH != "amd64":
		return "", fmt.Sprintf("WHPX runs x86_64 guests only, not %s", guest.Name)
	}
	return hw, ""
}

// cpuFor is the -cpu model for accel: the machine table's, else "max" (all
// the accelerator can offer: hvf and whpx).
func (mt machineType) cpuFor(accel string) string {
	if c, ok := mt.cpu[accel]; ok {
		return c
	}
	return "max"
}

// resolveAccel turns "auto" into the host's hardware accelerator or tcg,
// with the reason.
func (b *Backend) resolveAccel(ctx context.Context, a arch.Arch, want, machineName string, mt machineType, binary, kernel string) (string, string, error) {
	hw, why := hardwareAccel(runtime.GOOS, arch.Host(), a)
	switch want {
	case "tcg":
		return "tcg", "requested", nil
	case "kvm", "hvf", "whpx":
		if want != hardwareAccels[runtime.GOOS] {
			return "", "", fmt.Errorf("--accel %s: not on %s; valid here: auto, %s, tcg", want, runtime.GOOS, hardwareAccels[runtime.GOOS])
		}
		if why == "" {
			why = accelUnusable(hw)
		}
		if why != "" {
			return "", "", fmt.Errorf("--accel %s: %s", want, why)
		}
		return want, "requested", nil
	case "", "auto":
	default:
		return "", "", fmt.Errorf("unknown accelerator %q; valid: %s", want, validAccels)
	}
	if why == "" {
		why = accelUnusable(hw)
	}
	if why != "" {
		return "tcg", why, nil
	}
	key, err := probeKey(binary, a.Name, machineName)
	if err != nil {
		return "", "", err
	}
	cache := b.probeCachePath()
	if r, ok := readProbeCache(cache, key, time.Now()); ok {
		return r.Accel, r.Reason + " (cached probe)", nil
	}
	r, err := probeAccel(ctx, hw, mt, binary, kernel)
	if err != nil {
		// Cut short (the caller gave up): no answer, nothing cached.
		return "", "", fmt.Errorf("%s probe: %w", strings.ToUpper(hw), err)
	}
	writeProbeCache(cache, key, r)
	return r.Accel, r.Reason, nil
}

// kvmUnusable says why KVM cannot even be tried, or "".
func kvmUnusable(a arch.Arch) string {
	if hw, why := hardwareAccel("linux", arch.Host(), a); hw == "" {
		return why
	}
	return accelUnusable("kvm")
}

type probeResult struct {
	Accel  string    `json:"accel"`
	Reason string    `json:"reason"`
	When   time.Time `json:"when"`
	// Expires, when set, bounds how long the answer holds: a probe that
	// ran out of time says KVM hangs here, or only that the host was too
	// busy to tell; either way it is asked again later.
	Expires time.Time `json:"expires,omitzero"`
}

// hangRecheck is how long a probe that ran out of time is believed.
const hangRecheck = time.Hour

// probeAccel boots the real kernel under the hardware accelerator hw with
// no initramfs: a working accelerator reaches the "unable to mount root"
// panic, which panic=-1 and -no-reboot turn into a QEMU exit, well within
// probeDeadline. The device or feature existing proves nothing (see the
// README): only a booting 64-bit kernel does. QEMU exiting is a definite
// answer; running out of the probe's own time is one that expires
// (hangRecheck); ctx ending first is no answer at all (an error).
func probeAccel(ctx context.Context, hw string, mt machineType, binary, kernel string) (probeResult, error) {
	name := strings.ToUpper(hw)
	start := time.Now()
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", mt.machine, "-accel", hw, "-cpu", mt.cpuFor(hw), "-m", "128",
		"-kernel", kernel, "-append", "panic=-1 console=ttyS0",
		"-serial", "none", "-monitor", "none",
	}
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4 << 10}
	p, err := startQEMU(cmd)
	if err != nil {
		return probeResult{Accel: "tcg", Reason: name + " probe could not start QEMU: " + err.Error(), When: time.Now()}, nil
	}
	deadline := time.NewTimer(probeDeadline)
	defer deadline.Stop()
	select {
	case err := <-p.waited:
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			msg := strings.TrimSpace(stderr.String())
			if msg == "" {
				msg = err.Error()
			}
			return probeResult{Accel: "tcg", Reason: fmt.Sprintf("%s probe failed after %s: %s", name, took, firstLine(msg)), When: time.Now()}, nil
		}
		return probeResult{Accel: hw, Reason: fmt.Sprintf("%s probe booted a kernel in %s", name, took), When: time.Now()}, nil
	case <-deadline.C:
		p.kill()
		<-p.waited
		now := time.Now()
		return probeResult{Accel: "tcg", Reason: fmt.Sprintf("%s is there but a guest kernel did not boot within %s (nested virtualisation?)", name, probeDeadline),
			When: now, Expires: now.Add(hangRecheck)}, nil
	case <-ctx.Done():
		p.kill()
		<-p.waited
		return probeResult{}, ctx.Err()
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// probeKey identifies what a probe result holds for: this host kernel, this
// QEMU binary (path, size, mtime stand for its version), arch and machine.
func probeKey(binary, archName, machine string) (string, error) {
	release, err := hostRelease()
	if err != nil {
		return "", err
	}
	st, err := os.Stat(binary)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s|%s|%s|%d|%d|%s|%s", host, release,
		binary, st.Size(), st.ModTime().Unix(), archName, machine), nil
}

func (b *Backend) probeCachePath() string {
	if b.ProbeCache != "" {
		return b.ProbeCache
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "kitrun", "accel-probe.json")
}

func readProbeCache(path, key string, now time.Time) (probeResult, bool) {
	var all map[string]probeResult
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &all) != nil {
		return probeResult{}, false
	}
	r, ok := all[key]
	if ok && !r.Expires.IsZero() && now.After(r.Expires) {
		return probeResult{}, false
	}
	return r, ok
}

// writeProbeCache records a result; failing to cache only costs a probe.
func writeProbeCache(path, key string, r probeResult) {
	all := map[string]probeResult{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &all)
	}
	all[key] = r
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		_ = atomicfile.Write(path, b, 0o644)
	}
}
