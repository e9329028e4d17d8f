// Package historytest generates bench histories for tests and benchmarks:
// nightly runs of realistic configurations and metrics with noise and
// known steps, recorded through the real store.
package historytest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/bench/history"
)

// Metrics are the 30 metrics a generated configuration has, with a typical
// value: boot times in seconds, sizes in bytes.
var Metrics = []struct {
	Name  string
	Value float64
}{
	{"boot.vmm_ready", 0.05}, {"boot.first_output", 0.3}, {"boot.kernel_start", 0.35}, {"boot.kernel_entry", 0.4},
	{"boot.init_start", 1.6}, {"boot.modules_loaded", 1.75}, {"boot.network_up", 1.9}, {"boot.task.setup", 1.95},
	{"boot.service_ready.hello", 2.05}, {"boot.all_ready", 2.1}, {"shutdown", 0.25}, {"guest.init_start", 1.2},
	{"guest.all_ready", 1.7}, {"mem.guest_total", 230e6}, {"mem.guest_available", 200e6}, {"mem.guest_used", 29e6},
	{"mem.guest_rootfs", 9e6}, {"mem.service_rss.hello", 6e6}, {"mem.service_rss.kitinit", 5e6}, {"mem.qemu_rss", 250e6},
	{"mem.qemu_pss", 245e6}, {"mem.vmm_overhead", 119e6}, {"disk.kernel", 7.9e6}, {"disk.initrd", 1.5e6},
	{"disk.initrd_uncompressed", 4.2e6}, {"disk.component.kitinit", 2.1e6}, {"disk.component.service.hello", 1.4e6},
	{"disk.component.module.virtio_pci", 0.7e6}, {"disk.kernel_allocated", 7.9e6}, {"disk.initrd_allocated", 1.5e6},
}

// Options shape a generated history.
type Options struct {
	Runs, Configs, Samples int
	// Start is the first night (default 2026-01-01 02:00 UTC); runs are a
	// day apart.
	Start time.Time
	// Seed makes the noise reproducible.
	Seed uint64
	// Step, when not nil, is the relative change of every boot.* and
	// guest.* metric of configuration config at run (0-based) run.
	Step func(config, run int) float64
	// Machines are cycled over the configurations (default q35, microvm).
	Machines []string
}

// ConfigID is the ID of generated configuration i.
func ConfigID(i int, machine string) string {
	return fmt.Sprintf("spec%d/x86_64/%s/256M/auto", i, machine)
}

// Results makes the results of run n.
func Results(o Options, n int) *bench.Results {
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	}
	if len(o.Machines) == 0 {
		o.Machines = []string{"q35", "microvm"}
	}
	rng := rand.New(rand.NewPCG(o.Seed, uint64(n)))
	started := o.Start.Add(time.Duration(n) * 24 * time.Hour)
	r := &bench.Results{Schema: bench.SchemaVersion, Kitrun: fmt.Sprintf("v0.%d.0", n/30), QEMU: "7.2.0", Backend: "qemu",
		Host:    bench.Host{Hostname: "nightly", OS: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0", CPU: "test", CPUs: 2, MemBytes: 24 << 30, GoArch: "amd64"},
		Started: started, Finished: started.Add(20 * time.Minute), Runs: o.Samples, Warmup: 1}
	for c := range o.Configs {
		machine := o.Machines[c%len(o.Machines)]
		cfg := bench.Config{ID: ConfigID(c, machine), Name: fmt.Sprintf("spec%d", c), Arch: "x86_64", Machine: machine,
			MemMiB: 256, Accel: "auto", AccelUsed: "tcg", Kernel: "6.1.0-40-cloud-amd64", GitCommit: fmt.Sprintf("%040x", n/7)}
		level := 1.0
		if o.Step != nil {
			level += o.Step(c, n)
		}
		night := 1 + 0.02*rng.NormFloat64()
		for i := 1; i <= o.Samples; i++ {
			m := make(map[string]float64, len(Metrics))
			for _, mt := range Metrics {
				v := mt.Value * (1 + 0.1*float64(c))
				if known, _ := bench.LookupMetric(mt.Name); known.Exact {
					m[mt.Name] = float64(int64(v))
					continue
				}
				if mt.Name[:5] == "boot." || mt.Name[:6] == "guest." {
					v *= level * night * (1 + 0.03*rng.NormFloat64())
				} else {
					v *= 1 + 0.005*rng.NormFloat64()
				}
				m[mt.Name] = v
			}
			cfg.Samples = append(cfg.Samples, bench.Sample{Run: i, Metrics: m})
		}
		cfg.Summarize(nil)
		r.Configs = append(r.Configs, cfg)
	}
	return r
}

// Fill records o.Runs generated runs into s.
func Fill(ctx context.Context, s *history.Store, o Options) error {
	for n := range o.Runs {
		if _, err := s.Record(ctx, Results(o, n), fmt.Sprintf("generated-%d.json", n)); err != nil {
			return err
		}
	}
	return nil
}
