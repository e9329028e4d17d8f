package bench

import (
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testResults returns a small, fixed bench: the floor and the minimal spec
// on the same machine, five runs each, the minimal spec's third run failed.
func testResults() *Results {
	r := &Results{
		Schema: SchemaVersion,
		Kitrun: "v0.4.0",
		QEMU:   "8.2.2",
		Host: Host{Hostname: "bench1", OS: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0-18-amd64",
			CPU: "AMD EPYC 7B13 64-Core Processor", CPUs: 8, MemBytes: 16 << 30, GoArch: "amd64"},
		Started:  time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Finished: time.Date(2026, 3, 1, 12, 2, 30, 0, time.UTC),
		Runs:     5,
		Warmup:   1,
		Configs: []Config{
			{
				ID: "floor/x86_64/q35/256M/tcg", Name: "floor", Arch: "x86_64", Machine: "q35", MemMiB: 256,
				Accel: "tcg", AccelUsed: "tcg", Kernel: "6.1.0-18-amd64", Floor: true,
				Samples: []Sample{
					{Run: 1, Metrics: map[string]float64{"boot.power_off": 0.1502}},
					{Run: 2, Metrics: map[string]float64{"boot.power_off": 0.1498}},
					{Run: 3, Metrics: map[string]float64{"boot.power_off": 0.1511}},
					{Run: 4, Metrics: map[string]float64{"boot.power_off": 0.1495}},
					{Run: 5, Metrics: map[string]float64{"boot.power_off": 0.1500}},
				},
			},
			{
				ID: "minimal/x86_64/q35/256M/tcg", Name: "minimal", Spec: "minimal", Arch: "x86_64", Machine: "q35",
				MemMiB: 256, Accel: "tcg", AccelUsed: "tcg", Kernel: "6.1.0-18-amd64",
				Samples: []Sample{
					{Run: 1, Metrics: minimalSample(0.5123, 0.0412, 47_185_920)},
					{Run: 2, Metrics: minimalSample(0.5098, 0.0405, 47_190_016)},
					{Run: 3, Error: "all-ready not reached within 1m0s"},
					{Run: 4, Metrics: minimalSample(0.5201, 0.0420, 47_181_824)},
					{Run: 5, Metrics: minimalSample(0.5150, 0.0409, 47_185_920)},
				},
			},
		},
	}
	for i := range r.Configs {
		r.Configs[i].Summarize(nil)
	}
	return r
}

func minimalSample(ready, task, pss float64) map[string]float64 {
	return map[string]float64{
		"boot.kernel_start":          0.0601,
		"boot.all_ready":             ready,
		"boot.task.load-modules":     task,
		"boot.service_ready.sshd":    ready - 0.01,
		"mem.qemu_pss":               pss,
		"mem.guest_available":        201_326_592,
		"disk.initrd":                1_234_567,
		"ratio.all_ready_floor":      ready / 0.15,
		"guest.all_ready":            ready - 0.2,
		"disk.component.busybox":     1_048_576,
		"mem.service_rss.sshd":       4_194_304,
		"disk.initrd_uncompressed":   3_456_789,
		"mem.vmm_overhead":           40_000_000,
		"boot.modules_loaded":        0.3,
		"shutdown":                   0.0211,
		"disk.kernel":                8_000_000,
		"boot.init_start":            0.25,
		"guest.init_start":           0.05,
		"mem.guest_total":            230_000_000,
		"mem.guest_used":             28_673_408,
		"mem.qemu_rss":               60_000_000,
		"boot.vmm_ready":             0.03,
		"boot.network_up":            0.4,
		"disk.kernel_allocated":      8_003_584,
		"disk.initrd_allocated":      1_236_992,
		"boot.service_ready.crond":   ready - 0.02,
		"disk.component.dropbear":    300_000,
		"mem.service_rss.crond":      1_000_000,
		"boot.task.mount-filesystem": task / 2,
	}
}

// synthResults returns one configuration with n samples whose metrics are
// base values times scale, with normal noise of coefficient of variation
// cv, drawn from rng; sizes (disk.*) get no noise, plus sizeDelta bytes.
func synthResults(rng *rand.Rand, n int, scale, cv, sizeDelta float64) *Results {
	base := map[string]float64{
		"boot.all_ready":      0.5,        // lower is better
		"mem.qemu_pss":        60 << 20,   // lower is better
		"mem.guest_available": 200 << 20,  // higher is better
		"disk.initrd":         12_345_678, // exact
	}
	c := Config{ID: "minimal/x86_64/q35/256M/tcg", Name: "minimal", Spec: "minimal", Arch: "x86_64",
		Machine: "q35", MemMiB: 256, Accel: "tcg", AccelUsed: "tcg"}
	names := slices.Sorted(maps.Keys(base)) // draw in a fixed order
	for run := 1; run <= n; run++ {
		m := make(map[string]float64)
		for _, name := range names {
			v := base[name]
			if name == "disk.initrd" {
				m[name] = v + sizeDelta
				continue
			}
			m[name] = v * scale * (1 + cv*rng.NormFloat64())
		}
		c.Samples = append(c.Samples, Sample{Run: run, Metrics: m})
	}
	c.Summarize(nil)
	return &Results{Schema: SchemaVersion, Runs: n, Configs: []Config{c}}
}

// writeTemp writes data to a file in a test's temporary directory.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// approxEqual reports whether a and b agree to within 1e-12, relatively.
func approxEqual(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}
