package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	m := TimelineMetrics(v.Timeline())
	time.Sleep(settle)
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
	mem := opts.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	host, err := QEMUMemory(v.Machine.Info().PID, mem)
	if err != nil {
		v.Shutdown(context.Background(), 5*time.Second)
		return nil, accel, err
	}
	for k, val := range host {
		m[k] = val
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
		kind, name, _ := strings.Cut(mk.Stage, " ")
		host := mk.Host.Seconds()
		switch kind {
		case hypervisor.EvVMMReady:
			m["boot.vmm_ready"] = host
		case hypervisor.EvKernelStart:
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
		case "all-ready":
			m["boot.all_ready"] = host
			m["guest.all_ready"] = mk.Guest
		}
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

// QEMUMemory measures the QEMU process on the host:
//   - mem.qemu_rss: its resident set (smaps_rollup Rss);
//   - mem.qemu_pss: its proportional set size, shared pages split among
//     their users (smaps_rollup Pss);
//   - mem.vmm_overhead: Pss minus the resident part of the guest's RAM
//     mapping, i.e. what QEMU itself costs beyond the guest memory it backs.
//
// The guest RAM mapping is the anonymous mapping of exactly the guest's
// memory size.
func QEMUMemory(pid, memMiB int) (map[string]float64, error) {
	m := map[string]float64{}
	err := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), func(k string, v int64) {
		switch k {
		case "Rss":
			m["mem.qemu_rss"] = float64(v)
		case "Pss":
			m["mem.qemu_pss"] = float64(v)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("qemu memory: %w", err)
	}
	guest, err := guestRAMResident(pid, int64(memMiB)<<20)
	if err != nil {
		return nil, err
	}
	m["mem.vmm_overhead"] = m["mem.qemu_pss"] - float64(guest)
	return m, nil
}

// guestRAMResident finds the guest RAM mapping in /proc/PID/smaps and
// returns its resident bytes.
func guestRAMResident(pid int, size int64) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inGuest := false
	for sc.Scan() {
		line := sc.Text()
		key, rest, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(key, " ") || strings.Contains(key, "-") {
			inGuest = false // a mapping header line
			continue
		}
		v, ok := kbValue(rest)
		if !ok {
			continue
		}
		switch key {
		case "Size":
			inGuest = v == size
		case "Rss":
			if inGuest {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("qemu pid %d: no %d MiB guest RAM mapping in smaps", pid, size>>20)
}

// procKB calls f for each "Key:  123 kB" line of a /proc file, in bytes.
func procKB(path string, f func(key string, bytes int64)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if v, ok := kbValue(rest); ok {
			f(strings.TrimSpace(key), v)
		}
	}
	return nil
}

func kbValue(s string) (int64, bool) {
	parts := strings.Fields(s)
	if len(parts) != 2 || parts[1] != "kB" {
		return 0, false
	}
	v, err := strconv.ParseInt(parts[0], 10, 64)
	return v * 1024, err == nil
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
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil {
			m["disk."+name] = float64(st.Size)
			m["disk."+name+"_allocated"] = float64(st.Blocks * 512)
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
