package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/internal/version"
)

// Plan is what `kitrun bench` measures: every image on every combination of
// machine, memory size and accelerator, each run Runs times after Warmup
// unmeasured runs, and optionally the floor beside them.
type Plan struct {
	// Images are built images; their arch is part of the configuration.
	Images   []*image.Image
	Machines []string // "" is each arch's default
	MemMiB   []int
	Accels   []string
	// Formats are the image formats booted ("" is direct kernel boot;
	// disk formats must have been built into each image).
	Formats []string
	Runs    int
	Warmup  int
	Floor   bool
	// FloorInitrd returns the floor initramfs for an arch.
	FloorInitrd func(a arch.Arch) (string, error)
	// Settle is how long to wait after all-ready before measuring memory.
	Settle time.Duration
	// Timeout bounds each boot to all-ready.
	Timeout time.Duration
	// Cooldown is a pause between runs. On hosts where a VM started right
	// after another one starts slower about every other time, a second's
	// pause makes the runs alike (lower variance, same ordering fairness).
	Cooldown time.Duration
	Backend  hypervisor.Backend
	// Snapshots, when set, adds beside every direct-boot configuration
	// its twin restored from a snapshot (Config.Snapshot, ID + "/snapshot").
	Snapshots *vm.Snapshots
	// Progress is told about every finished run (warm-up ones too).
	Progress func(p Progress)
	// Checkpoint receives the results so far after every measured run, so
	// that a bench killed outright still leaves what it had measured.
	Checkpoint func(r *Results)
}

// Progress describes one finished run.
type Progress struct {
	Done, Total int
	Config      *Config
	Warmup      bool
	Sample      Sample
}

// unit is one configuration and how to boot it once.
type unit struct {
	cfg  *Config
	boot func() (Sample, string, error) // metrics, accel used
}

// Run executes the plan. Configurations are interleaved run by run, in
// forward order on even rounds and reverse order on odd ones (A B B A …):
// drift hits all alike, and on hosts where back-to-back VMs alternate
// between a fast and a slow slot every configuration gets both. When ctx is
// cancelled the run in progress finishes and Run returns what it has, with
// Interrupted set. A failed boot is a failed sample; the bench goes on.
func Run(ctx context.Context, p Plan) (*Results, error) {
	if p.Runs <= 0 {
		return nil, errors.New("runs must be at least 1")
	}
	units, err := p.units()
	if err != nil {
		return nil, err
	}
	r := &Results{
		Schema: SchemaVersion, Kitrun: version.String(), Host: HostInfo(), Started: time.Now().UTC(),
		Runs: p.Runs, Warmup: p.Warmup,
	}
	for _, u := range units {
		r.Configs = append(r.Configs, *u.cfg)
	}
	total := (p.Runs + p.Warmup) * len(units)
	node := NodeName()
	done := 0
rounds:
	for round := 0; round < p.Runs+p.Warmup; round++ {
		for i := range units {
			if ctx.Err() != nil {
				r.Interrupted = true
				break rounds
			}
			j := slot(round, i, len(units))
			u := units[j]
			if done > 0 {
				time.Sleep(p.Cooldown)
			}
			s, accel, err := u.boot()
			if err != nil {
				s = Sample{Error: err.Error()}
			}
			warm := round < p.Warmup
			c := &r.Configs[j]
			if accel != "" {
				c.AccelUsed = accel
			}
			if !warm {
				s.Run = round - p.Warmup + 1
				s.Node = node
				c.Samples = append(c.Samples, s)
			}
			done++
			if p.Progress != nil {
				p.Progress(Progress{Done: done, Total: total, Config: c, Warmup: warm, Sample: s})
			}
			if !warm && p.Checkpoint != nil {
				p.Checkpoint(r.snapshot())
			}
		}
	}
	r.summarize()
	return r, nil
}

// summarize computes every configuration's statistics and the floor ratios.
func (r *Results) summarize() {
	for i := range r.Configs {
		r.Configs[i].Summarize(nil)
	}
	addFloorRatios(r)
	addSnapshotRatios(r)
	r.Finished = time.Now().UTC()
}

// snapshot is a summarized copy of results still being gathered.
func (r *Results) snapshot() *Results {
	c := *r
	c.Configs = make([]Config, len(r.Configs))
	for i, cfg := range r.Configs {
		cfg.Samples = append([]Sample(nil), cfg.Samples...)
		c.Configs[i] = cfg
	}
	c.Interrupted = true // until the run completes, it is partial
	c.summarize()
	return &c
}

// slot is the configuration run at position i of a round: forward on even
// rounds, backward on odd ones.
func slot(round, i, n int) int {
	if round%2 == 1 {
		return n - 1 - i
	}
	return i
}

// Failures counts failed samples over all configurations.
func (r *Results) Failures() int {
	n := 0
	for _, c := range r.Configs {
		n += c.Failed
	}
	return n
}

func (p Plan) units() ([]unit, error) {
	machines, mems, accels, formats := p.Machines, p.MemMiB, p.Accels, p.Formats
	if len(machines) == 0 {
		machines = []string{""}
	}
	if len(mems) == 0 {
		mems = []int{hypervisor.DefaultMemoryMiB}
	}
	if len(accels) == 0 {
		accels = []string{hypervisor.DefaultAccel}
	}
	if len(formats) == 0 {
		formats = []string{""}
	}
	var units []unit
	floors := map[string]bool{}
	ids := map[string]bool{}
	for _, img := range p.Images {
		plat, err := p.Backend.Platform(img.Arch)
		if err != nil {
			return nil, err
		}
		for _, mname := range machines {
			machine, _, err := plat.Machine(mname)
			if err != nil {
				return nil, err
			}
			for _, mem := range mems {
				for _, accel := range accels {
					for _, format := range formats {
						if format == image.FormatDirect {
							format = ""
						}
						if format != "" {
							if _, err := img.Disk(format); err != nil {
								return nil, err
							}
						}
						cfg := &Config{
							Name: img.Manifest.Name, Spec: img.Dir, Arch: img.Arch.Name, Machine: machine,
							MemMiB: mem, Accel: accel, Format: format, Kernel: img.Manifest.KernelVersion,
						}
						cfg.ID = fmt.Sprintf("%s/%s/%s/%dM/%s", cfg.Name, cfg.Arch, machine, mem, accel)
						if format != "" {
							cfg.ID += "/" + format
						}
						if ids[cfg.ID] {
							return nil, fmt.Errorf("configuration %s given twice (two specs named %q?)", cfg.ID, cfg.Name)
						}
						ids[cfg.ID] = true
						units = append(units, p.imageUnit(cfg, img))
						if p.Snapshots != nil && format == "" {
							sc := *cfg
							sc.Snapshot, sc.ID = true, cfg.ID+SnapshotSuffix
							ids[sc.ID] = true
							units = append(units, p.imageUnit(&sc, img))
						}
						if !p.Floor {
							continue
						}
						key := fmt.Sprintf("%s/%s/%dM/%s/%s", cfg.Arch, machine, mem, accel, img.Manifest.Kernel.SHA256)
						if floors[key] {
							continue
						}
						floors[key] = true
						f := &Config{
							Name: "floor", Arch: cfg.Arch, Machine: machine, MemMiB: mem, Accel: accel,
							Kernel: cfg.Kernel, Floor: true,
							ID: fmt.Sprintf("floor/%s/%s/%dM/%s", cfg.Arch, machine, mem, accel),
						}
						if ids[f.ID] { // same machine, other kernel
							f.ID += "/" + cfg.Kernel
						}
						ids[f.ID] = true
						u, err := p.floorUnit(f, img)
						if err != nil {
							return nil, err
						}
						units = append(units, u)
					}
				}
			}
		}
	}
	if len(units) == 0 {
		return nil, errors.New("nothing to bench: no images")
	}
	return units, nil
}

func (p Plan) imageUnit(cfg *Config, img *image.Image) unit {
	disk := DiskMetrics(img)
	return unit{cfg: cfg, boot: func() (Sample, string, error) {
		opts := vm.Options{Resources: cfg.Resources(), Format: cfg.Format}
		if cfg.Snapshot {
			opts.Snapshots = p.Snapshots
		}
		m, accel, err := MeasureImage(p.Backend, img, opts, p.Settle, p.Timeout)
		if err != nil {
			return Sample{}, accel, err
		}
		for k, v := range disk {
			m[k] = v
		}
		return Sample{Metrics: m}, accel, nil
	}}
}

func (p Plan) floorUnit(cfg *Config, img *image.Image) (unit, error) {
	if p.FloorInitrd == nil {
		return unit{}, errors.New("the floor needs FloorInitrd")
	}
	initrd, err := p.FloorInitrd(img.Arch)
	if err != nil {
		return unit{}, fmt.Errorf("building the floor for %s: %w", img.Arch.Name, err)
	}
	floor := FloorImage(img, initrd)
	return unit{cfg: cfg, boot: func() (Sample, string, error) {
		f, err := BootFloor(context.Background(), p.Backend, floor, cfg.Resources(), p.Timeout)
		if err != nil {
			return Sample{}, f.Accel, err
		}
		return Sample{Metrics: map[string]float64{"boot.power_off": f.PowerOff.Seconds()}}, f.Accel, nil
	}}, nil
}

// addFloorRatios adds ratio.all_ready_floor to every configuration that has
// a floor (floorFor): each run's all-ready over the floor's power-off in
// the same round (its neighbour in the A B B A order), as a sample metric,
// and their paired estimate with its confidence interval (PairedRatio) as
// the metric's Stats. Pairing cancels what a round's host noise does to
// both; a ratio of the two medians would not.
func addFloorRatios(r *Results) {
	for i := range r.Configs {
		c := &r.Configs[i]
		if c.Floor {
			continue
		}
		f := floorFor(r, c)
		if f == nil || f.Format != "" {
			continue
		}
		off := map[int]float64{}
		for _, s := range f.Samples {
			if v, ok := s.Metrics["boot.power_off"]; ok && s.Error == "" {
				off[s.Run] = v
			}
		}
		var ratios []float64
		for j := range c.Samples {
			s := &c.Samples[j]
			ready, ok := s.Metrics["boot.all_ready"]
			floor, paired := off[s.Run]
			if s.Error != "" || !ok || !paired || floor <= 0 {
				continue
			}
			s.Metrics["ratio.all_ready_floor"] = ready / floor
			ratios = append(ratios, ready/floor)
		}
		if len(ratios) > 0 {
			c.Stats["ratio.all_ready_floor"] = PairedRatio(ratios)
		}
	}
}

// SnapshotSuffix ends the ID of a configuration restored from a snapshot;
// without it, the ID is its cold twin's.
const SnapshotSuffix = "/snapshot"

// addSnapshotRatios adds ratio.all_ready_cold to every configuration
// restored from a snapshot: each run's all-ready over its cold twin's in
// the same round, and their paired estimate (as addFloorRatios does).
func addSnapshotRatios(r *Results) {
	for i := range r.Configs {
		c := &r.Configs[i]
		if !c.Snapshot {
			continue
		}
		cold := map[int]float64{}
		for _, t := range r.Configs {
			if t.ID != strings.TrimSuffix(c.ID, SnapshotSuffix) {
				continue
			}
			for _, s := range t.Samples {
				if v, ok := s.Metrics["boot.all_ready"]; ok && s.Error == "" {
					cold[s.Run] = v
				}
			}
		}
		var ratios []float64
		for j := range c.Samples {
			s := &c.Samples[j]
			ready, ok := s.Metrics["boot.all_ready"]
			base, paired := cold[s.Run]
			if s.Error != "" || !ok || !paired || base <= 0 {
				continue
			}
			s.Metrics["ratio.all_ready_cold"] = ready / base
			ratios = append(ratios, ready/base)
		}
		if len(ratios) > 0 {
			c.Stats["ratio.all_ready_cold"] = PairedRatio(ratios)
		}
	}
}

// HostInfo describes this machine.
func HostInfo() Host {
	h := Host{CPUs: numCPU(), GoArch: arch.Host().GOARCH}
	h.Hostname, _ = os.Hostname()
	h.Kernel = readTrim("/proc/sys/kernel/osrelease")
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				h.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) == 2 && f[1] == "kB" {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					h.MemBytes = kb << 10
				}
			}
		}
	}
	return h
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}
