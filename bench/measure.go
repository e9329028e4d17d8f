package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// MeasureImage boots img once and returns its metrics: the boot stages on
// the host clock (and two on the guest's), memory after all-ready and a
// settle time, and the shutdown time. It also returns the accelerator used.
func MeasureImage(backend hypervisor.Backend, img *image.Image, opts vm.Options, settle, timeout time.Duration) (map[string]float64, string, error) {
	v, err := vm.Boot(context.Background(), backend, img, opts)
	if err != nil {
		return nil, "", err
	}
	accel := v.Machine.Info().Accel
	if err := v.WaitReady(context.Background(), timeout); err != nil {
		v.Shutdown(context.Background(), 5*time.Second)
		return nil, accel, firstLineErr(err)
	}
	if u := v.SnapshotUse(); opts.Snapshots != nil && !u.Restored {
		// A cold boot is not a sample of a restore.
		v.Shutdown(context.Background(), 5*time.Second)
		return nil, accel, fmt.Errorf("not restored from a snapshot: %s", u.Cold)
	}
	m := TimelineMetrics(v.Timeline())
	time.Sleep(settle)
	// A machine whose channel shares a console that takes no input (a
	// cloud's serial console read through snapshots) cannot be asked:
	// its guest memory figures are missing, not a failed run.
	if v.Machine.Channel() != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		guest, err := v.Memory(ctx)
		cancel()
		if err != nil {
			v.Shutdown(context.Background(), 5*time.Second)
			return nil, accel, err
		}
		for k, val := range GuestMemoryMetrics(guest) {
			m[k] = val
		}
	}
	if mr, ok := v.Machine.(hypervisor.MemoryReporter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		hm, err := mr.HostMemory(ctx)
		cancel()
		if err != nil {
			v.Shutdown(context.Background(), 5*time.Second)
			return nil, accel, err
		}
		for k, val := range HostMemoryMetrics(hm) {
			m[k] = val
		}
	}
	start := time.Now()
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		return nil, accel, fmt.Errorf("shutdown: %w", err)
	}
	m["shutdown"] = time.Since(start).Seconds()
	return m, accel, nil
}

// firstLineErr keeps an error's first line: a sample's reason must fit a
// table cell, and the console tail is in the run's own output.
func firstLineErr(err error) error {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return fmt.Errorf("%s", s[:i])
	}
	return err
}

// TimelineMetrics turns boot marks into metrics: host times from QEMU exec
// (boot.*) and the guest's uptime at init start and all-ready (guest.*).
func TimelineMetrics(marks []vm.Mark) map[string]float64 {
	m := map[string]float64{}
	for _, mk := range marks {
		kind, name := mk.Stage.Kind, mk.Stage.Name
		host := mk.Host.Seconds()
		switch kind {
		case hypervisor.EvVMMReady:
			m["boot.vmm_ready"] = host
		case hypervisor.EvAPIAccepted:
			m["boot.api_accepted"] = host
		case hypervisor.EvRunning:
			m["boot.instance_running"] = host
		case vm.StageFirmware:
			m["boot.first_output"] = host
		case vm.StageKernel:
			m["boot.kernel_start"] = host
		case "init-start":
			m["boot.init_start"] = host
			m["guest.init_start"] = mk.Guest
		case "modules-loaded":
			m["boot.modules_loaded"] = host
		case "network-up":
			m["boot.network_up"] = host
		case "task-done":
			m["boot.task."+name] = host
		case "service-ready":
			m["boot.service_ready."+name] = host
		case hypervisor.EvRestoreStart:
			m["boot.restore_start"] = host
		case hypervisor.EvRestored:
			m["boot.restored"] = host
		case "reseeded":
			m["boot.reseeded"] = host
		case "all-ready":
			m["boot.all_ready"] = host
			m["guest.all_ready"] = mk.Guest
		}
	}
	if start, ok := m["guest.init_start"]; ok {
		if ready, ok := m["guest.all_ready"]; ok {
			// init's own work on the guest's clock alone: of all boot
			// times the least moved by the host's load before init.
			m["guest.userspace"] = ready - start
		}
	}
	if host, ok := m["boot.init_start"]; ok && m["guest.init_start"] > 0 {
		// The two clocks are not compared: each gives a duration, and
		// their difference is when, on the host's clock, the guest's
		// began.
		m["boot.kernel_entry"] = max(0, host-m["guest.init_start"])
	}
	return m
}

// GuestMemoryMetrics maps kitinit's memory answer to metrics.
// mem.guest_used is MemTotal − MemAvailable: what the guest could not hand
// to a new program without swapping, page cache it can drop excluded.
func GuestMemoryMetrics(d map[string]int64) map[string]float64 {
	m := map[string]float64{}
	total, okT := d["mem_total"]
	avail, okA := d["mem_available"]
	if okT {
		m["mem.guest_total"] = float64(total)
	}
	if okA {
		m["mem.guest_available"] = float64(avail)
	}
	if okT && okA {
		m["mem.guest_used"] = float64(total - avail)
	}
	if v, ok := d["rootfs_used"]; ok {
		m["mem.guest_rootfs"] = float64(v)
	}
	for k, v := range d {
		if name, ok := strings.CutPrefix(k, "rss_"); ok {
			m["mem.service_rss."+name] = float64(v)
		}
	}
	return m
}

// HostMemoryMetrics maps a backend's host memory figures to metrics:
//   - mem.qemu_rss, mem.qemu_pss: the hypervisor process's resident and
//     proportional set sizes (named for QEMU, the backend that has them);
//   - mem.vmm_overhead: PSS minus the resident part of the guest's RAM,
//     what the hypervisor itself costs beyond the guest memory it backs;
//   - mem.qemu_guest_ram, mem.qemu_code_cache, mem.qemu_files: the
//     resident guest RAM, and of the rest the JIT's translated code and
//     the file-backed pages (binary, libraries, kernel), where the backend
//     tells them apart.
func HostMemoryMetrics(hm hypervisor.HostMemory) map[string]float64 {
	m := map[string]float64{"mem.vmm_overhead": float64(hm.Overhead)}
	if hm.RSS > 0 {
		m["mem.qemu_rss"] = float64(hm.RSS)
		m["mem.qemu_guest_ram"] = float64(hm.GuestResident)
	}
	if hm.PSS > 0 {
		m["mem.qemu_pss"] = float64(hm.PSS)
	}
	if hm.CodeCache > 0 {
		m["mem.qemu_code_cache"] = float64(hm.CodeCache)
	}
	if hm.Files > 0 {
		m["mem.qemu_files"] = float64(hm.Files)
	}
	return m
}

// DiskMetrics are an image's sizes: apparent and allocated bytes of the
// kernel and initramfs, the initramfs uncompressed, and what each component
// adds to it (by the manifest's origins: kitinit, each module, each
// service or task program, files, kitrun's skeleton).
func DiskMetrics(img *image.Image) map[string]float64 {
	m := map[string]float64{
		"disk.initrd_uncompressed": float64(img.Manifest.Initrd.UncompressedSize),
	}
	for name, path := range map[string]string{"kernel": img.Kernel, "initrd": img.Initrd} {
		if st, err := os.Stat(path); err == nil {
			m["disk."+name] = float64(st.Size())
			m["disk."+name+"_allocated"] = float64(disk.Allocated(st))
		}
	}
	for format, d := range img.Manifest.Disks {
		m["disk.format."+format] = float64(d.Size)
		if st, err := os.Stat(filepath.Join(img.Dir, d.File)); err == nil {
			m["disk.format_allocated."+format] = float64(disk.Allocated(st))
		}
	}
	for _, e := range img.Manifest.Files {
		if e.Size > 0 {
			m["disk.component."+component(e.Origin)] += float64(e.Size)
		}
	}
	return m
}

// component names a manifest origin for a metric: "kernel module
// virtio_net" → "module.virtio_net", "service web" → "service.web",
// "shared library of service web" → "service.web", "files[2] /etc/x" →
// "files".
func component(origin string) string {
	origin = strings.TrimPrefix(origin, "shared library of ")
	switch {
	case strings.HasPrefix(origin, "kernel module "):
		return "module." + strings.TrimPrefix(origin, "kernel module ")
	case strings.HasPrefix(origin, "service "), strings.HasPrefix(origin, "onboot task "), strings.HasPrefix(origin, "onshutdown task "):
		f := strings.Fields(origin)
		return strings.Join(f[:len(f)-1], "_") + "." + f[len(f)-1]
	case strings.HasPrefix(origin, "files["):
		return "files"
	case strings.HasPrefix(origin, "kitinit"):
		return "kitinit"
	}
	return "kitrun"
}

func numCPU() int { return runtime.NumCPU() }
