package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/hypervisor"
)

// probeDeadline is how long a KVM boot may take to reach the kernel's
// root-mount panic. Where KVM works that takes well under a second; where it
// is broken (nested virtualisation that hangs 64-bit guests) the probe gives
// up here and kitrun falls back to TCG.
const probeDeadline = 3 * time.Second

// resolveAccel turns "auto" into kvm or tcg, with the reason.
func (b *Backend) resolveAccel(ctx context.Context, cfg hypervisor.Config, machineName string, mt machineType, binary string) (string, string, error) {
	switch cfg.Accel {
	case "tcg":
		return "tcg", "requested", nil
	case "kvm":
		if reason := kvmUnusable(cfg.Arch); reason != "" {
			return "", "", fmt.Errorf("--accel kvm: %s", reason)
		}
		return "kvm", "requested", nil
	case "", "auto":
	default:
		return "", "", fmt.Errorf("unknown accelerator %q; valid: auto, kvm, tcg", cfg.Accel)
	}
	if reason := kvmUnusable(cfg.Arch); reason != "" {
		return "tcg", reason, nil
	}
	key, err := probeKey(binary, cfg.Arch.Name, machineName)
	if err != nil {
		return "", "", err
	}
	cache := b.probeCachePath()
	if r, ok := readProbeCache(cache, key); ok {
		return r.Accel, r.Reason + " (cached probe)", nil
	}
	r := probeKVM(ctx, cfg, mt, binary)
	writeProbeCache(cache, key, r)
	return r.Accel, r.Reason, nil
}

// kvmUnusable says why KVM cannot even be tried, or "".
func kvmUnusable(a arch.Arch) string {
	if a.GOARCH != arch.Host().GOARCH {
		return fmt.Sprintf("KVM cannot run %s guests on a %s host", a.Name, arch.Host().Name)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "/dev/kvm is not usable: " + err.Error()
	}
	f.Close()
	return ""
}

type probeResult struct {
	Accel  string    `json:"accel"`
	Reason string    `json:"reason"`
	When   time.Time `json:"when"`
}

// probeKVM boots the real kernel under KVM with no initramfs: a working
// KVM reaches the "unable to mount root" panic, which panic=-1 and
// -no-reboot turn into a QEMU exit, well within probeDeadline. The device
// file existing proves nothing (see NOTES): only a booting 64-bit kernel
// does.
func probeKVM(ctx context.Context, cfg hypervisor.Config, mt machineType, binary string) probeResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, probeDeadline)
	defer cancel()
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", mt.machine, "-accel", "kvm", "-cpu", mt.cpu["kvm"], "-m", "128",
		"-kernel", cfg.Kernel, "-append", "panic=-1 console=ttyS0",
		"-serial", "none", "-monitor", "none",
	}
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return probeResult{Accel: "tcg", Reason: "KVM probe could not start QEMU: " + err.Error(), When: time.Now()}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			msg := strings.TrimSpace(stderr.String())
			if msg == "" {
				msg = err.Error()
			}
			return probeResult{Accel: "tcg", Reason: fmt.Sprintf("KVM probe failed after %s: %s", took, firstLine(msg)), When: time.Now()}
		}
		return probeResult{Accel: "kvm", Reason: fmt.Sprintf("KVM probe booted a kernel in %s", took), When: time.Now()}
	case <-ctx.Done():
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-done
		return probeResult{Accel: "tcg", Reason: fmt.Sprintf("/dev/kvm exists but a KVM guest kernel did not boot within %s (nested virtualisation?)", probeDeadline), When: time.Now()}
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
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	st, err := os.Stat(binary)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s|%s|%s|%d|%d|%s|%s", host, unix.ByteSliceToString(u.Release[:]),
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

func readProbeCache(path, key string) (probeResult, bool) {
	var all map[string]probeResult
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &all) != nil {
		return probeResult{}, false
	}
	r, ok := all[key]
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
