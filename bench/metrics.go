package bench

import (
	"fmt"
	"slices"
	"strings"
)

// This file owns the metric registry: which metric names exist, their
// units, which direction is better, and how users name them in filters.

// Units of the registered metrics.
const (
	UnitSeconds = "s"
	UnitBytes   = "B"
	UnitRatio   = "ratio"
)

// familySuffix marks a registry entry that is a family of metrics, one per
// task, service or component: "boot.task.<name>" matches "boot.task.udev".
const familySuffix = "<name>"

// Metrics is the registry of known metrics, in report order. An entry whose
// name ends in "<name>" is a family and matches every name with its prefix
// followed by a non-empty name.
var Metrics = []Metric{
	// Host-side times, from QEMU exec.
	{Name: "boot.vmm_ready", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to the VMM ready to run the guest"},
	// A cloud's own stages, from the API call that starts the instance.
	{Name: "boot.api_accepted", Unit: UnitSeconds, Lower: true, Doc: "cloud: the start request to the platform accepting it (instance pending)"},
	{Name: "boot.instance_running", Unit: UnitSeconds, Lower: true, Doc: "cloud: the start request to the instance's running state, as polled"},
	{Name: "boot.first_output", Unit: UnitSeconds, Lower: true, Doc: "machine start to the first console byte (firmware or boot loader; the kernel on a direct boot)"},
	{Name: "boot.kernel_start", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to the kernel starting"},
	{Name: "boot.kernel_entry", Unit: UnitSeconds, Lower: true, Doc: "machine start to the guest kernel's clock starting, estimated as boot.init_start - guest.init_start: firmware, boot loader and decompression"},
	{Name: "boot.init_start", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to init starting"},
	{Name: "boot.modules_loaded", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to the kernel modules loaded"},
	{Name: "boot.network_up", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to the network up"},
	{Name: "boot.all_ready", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to all-ready (restored from a snapshot: to the reseed's answer, the restore time)"},
	{Name: "boot.restore_start", Unit: UnitSeconds, Lower: true, Doc: "--from-snapshot: QEMU exec to the saved state starting to load"},
	{Name: "boot.restored", Unit: UnitSeconds, Lower: true, Doc: "--from-snapshot: QEMU exec to the saved state loaded and the guest running"},
	{Name: "boot.reseeded", Unit: UnitSeconds, Lower: true, Doc: "--from-snapshot: QEMU exec to kitinit applying the run's fresh state (keys, entropy, clock)"},
	{Name: "boot.task.<name>", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to the task done"},
	{Name: "boot.service_ready.<name>", Unit: UnitSeconds, Lower: true, Doc: "QEMU exec to the service ready"},
	// The floor's only stage: it powers off as soon as init runs.
	{Name: "boot.power_off", Unit: UnitSeconds, Lower: true, Doc: "floor: QEMU exec to QEMU exit"},
	{Name: "shutdown", Unit: UnitSeconds, Lower: true, Doc: "power-off request to QEMU exit"},
	// The guest's own clock.
	{Name: "guest.init_start", Unit: UnitSeconds, Lower: true, Doc: "guest uptime at init start"},
	{Name: "guest.all_ready", Unit: UnitSeconds, Lower: true, Doc: "guest uptime at all-ready"},
	{Name: "guest.userspace", Unit: UnitSeconds, Lower: true, Doc: "guest uptime from init start to all-ready: modules, network, onboot tasks, services"},

	{Name: "mem.guest_total", Unit: UnitBytes, Doc: "memory the guest kernel manages (MemTotal)"},
	{Name: "mem.guest_available", Unit: UnitBytes, Doc: "memory available in the guest at all-ready (MemAvailable)"},
	{Name: "mem.guest_used", Unit: UnitBytes, Lower: true, Doc: "memory used in the guest at all-ready"},
	{Name: "mem.service_rss.<name>", Unit: UnitBytes, Lower: true, Doc: "resident memory of the service in the guest"},
	{Name: "mem.qemu_rss", Unit: UnitBytes, Lower: true, Doc: "resident memory of the QEMU process on the host"},
	{Name: "mem.qemu_pss", Unit: UnitBytes, Lower: true, Doc: "proportional set size of the QEMU process on the host"},
	{Name: "mem.vmm_overhead", Unit: UnitBytes, Lower: true, Doc: "host memory QEMU uses beyond the guest's"},
	{Name: "mem.qemu_guest_ram", Unit: UnitBytes, Lower: true, Doc: "resident part of the guest's RAM in the QEMU process"},
	{Name: "mem.qemu_code_cache", Unit: UnitBytes, Lower: true, Doc: "resident TCG translation buffer of the QEMU process"},
	{Name: "mem.qemu_files", Unit: UnitBytes, Lower: true, Doc: "resident file-backed pages of the QEMU process (binary, libraries, kernel)"},
	{Name: "mem.guest_rootfs", Unit: UnitBytes, Lower: true, Doc: "guest root filesystem (the unpacked initramfs, in RAM) in use"},

	// Sizes are the same on every run, so any change is real.
	{Name: "disk.kernel", Unit: UnitBytes, Lower: true, Exact: true, Doc: "kernel image size"},
	{Name: "disk.initrd", Unit: UnitBytes, Lower: true, Exact: true, Doc: "initramfs size, compressed"},
	{Name: "disk.initrd_uncompressed", Unit: UnitBytes, Lower: true, Exact: true, Doc: "initramfs size, uncompressed"},
	{Name: "disk.component.<name>", Unit: UnitBytes, Lower: true, Exact: true, Doc: "bytes the component adds to the initramfs"},
	{Name: "disk.kernel_allocated", Unit: UnitBytes, Lower: true, Exact: true, Doc: "disk space allocated to the kernel image"},
	{Name: "disk.initrd_allocated", Unit: UnitBytes, Lower: true, Exact: true, Doc: "disk space allocated to the initramfs"},
	{Name: "disk.format.<name>", Unit: UnitBytes, Lower: true, Exact: true, Doc: "size of the image's disk in that format (boot/disk)"},
	{Name: "disk.format_allocated.<name>", Unit: UnitBytes, Lower: true, Exact: true, Doc: "disk space allocated to the image's disk in that format (less than its size when sparse)"},

	{Name: "ratio.all_ready_floor", Unit: UnitRatio, Lower: true, Doc: "boot.all_ready over the floor's boot.power_off"},
	{Name: "ratio.all_ready_cold", Unit: UnitRatio, Lower: true, Doc: "--from-snapshot: a restore's boot.all_ready over its cold twin's in the same round (paired)"},
}

// LookupMetric returns the registry entry for a metric name, with Name set
// to name itself for a member of a family ("boot.task.udev").
func LookupMetric(name string) (Metric, bool) {
	i := metricIndex(name)
	if i < 0 {
		return Metric{}, false
	}
	m := Metrics[i]
	m.Name = name
	return m, true
}

// metricIndex returns the index in Metrics of the entry name belongs to,
// or -1. Report order is registry order, so this is also a sort key.
func metricIndex(name string) int {
	for i, m := range Metrics {
		if prefix, ok := strings.CutSuffix(m.Name, familySuffix); ok {
			if len(name) > len(prefix) && strings.HasPrefix(name, prefix) {
				return i
			}
		} else if m.Name == name {
			return i
		}
	}
	return -1
}

// sortMetricNames sorts names in registry order; members of a family, and
// unknown names (last), sort by name.
func sortMetricNames(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := metricIndex(a), metricIndex(b)
		if ia < 0 {
			ia = len(Metrics)
		}
		if ib < 0 {
			ib = len(Metrics)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
}

// A metric selector, as a user writes it after --metric, is a metric name
// ("boot.all_ready", "boot.task.udev"), or a prefix ending in ".*" that
// selects a group ("mem.*", "boot.task.*").

// ValidateMetricNames checks metric selectors a user gave, and reports all
// the unknown ones at once with the valid names and families.
func ValidateMetricNames(names []string) error {
	var bad []string
	for _, n := range names {
		if !validSelector(n) {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	var valid []string
	for _, m := range Metrics {
		valid = append(valid, m.Name)
	}
	word := "metric"
	if len(bad) > 1 {
		word = "metrics"
	}
	return fmt.Errorf("unknown %s %s; valid metrics are %s, where <name> is a task, service or component name; a trailing .* selects a group, e.g. mem.* or boot.task.*",
		word, strings.Join(bad, ", "), strings.Join(valid, ", "))
}

func validSelector(sel string) bool {
	if prefix, ok := strings.CutSuffix(sel, "*"); ok {
		if !strings.HasSuffix(prefix, ".") {
			return false
		}
		for _, m := range Metrics {
			if strings.HasPrefix(m.Name, prefix) {
				return true
			}
		}
		return false
	}
	return metricIndex(sel) >= 0
}

// selectMetric reports whether metric name is selected by sels; no
// selectors select everything.
func selectMetric(sels []string, name string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, sel := range sels {
		if prefix, ok := strings.CutSuffix(sel, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if sel == name {
			return true
		}
	}
	return false
}

// SelectMetric reports whether metric name is selected by the selectors
// sels (see ValidateMetricNames); no selectors select everything.
func SelectMetric(sels []string, name string) bool { return selectMetric(sels, name) }

// SortMetricNames sorts metric names in report (registry) order.
func SortMetricNames(names []string) { sortMetricNames(names) }
