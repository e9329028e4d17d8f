package bench

import (
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// SchemaVersion is the version of the JSON results format (README,
// "kitrun bench JSON").
const SchemaVersion = 1

// Results is one `kitrun bench` invocation: the environment, and for each
// configuration every raw sample and its statistics.
type Results struct {
	Schema int    `json:"schema"`
	Kitrun string `json:"kitrun_version"`
	Host   Host   `json:"host"`
	QEMU   string `json:"qemu_version,omitempty"`
	// Backend is the hypervisor backend that ran the machines ("qemu" when
	// empty: results from before the field).
	Backend  string    `json:"backend,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Runs     int       `json:"runs"`
	Warmup   int       `json:"warmup"`
	// Interrupted is set when Ctrl-C ended the bench early: the samples
	// finished before it are all kept.
	Interrupted bool     `json:"interrupted,omitempty"`
	Configs     []Config `json:"configs"`
}

// Host describes the machine the bench ran on.
type Host struct {
	Hostname string `json:"hostname"`
	OS       string `json:"os"`     // e.g. "Debian GNU/Linux 12 (bookworm)"
	Kernel   string `json:"kernel"` // uname -r
	CPU      string `json:"cpu"`    // model name
	CPUs     int    `json:"cpus"`
	MemBytes int64  `json:"mem_bytes"`
	GoArch   string `json:"goarch"`
}

// Config is one configuration benched: a spec (or the floor) on one
// machine, memory size, accelerator and arch.
type Config struct {
	// ID names the configuration uniquely within a run and stably across
	// runs, e.g. "minimal/x86_64/q35/256M/tcg"; compare matches on it.
	ID      string `json:"id"`
	Name    string `json:"name"` // spec name, or "floor"
	Spec    string `json:"spec,omitempty"`
	Arch    string `json:"arch"`
	Machine string `json:"machine"`
	MemMiB  int    `json:"mem_mib"`
	// Accel is what was asked; AccelUsed what actually ran.
	Accel     string `json:"accel"`
	AccelUsed string `json:"accel_used"`
	Kernel    string `json:"kernel_version"`
	// Format is the image format booted ("" for direct kernel boot).
	Format string `json:"format,omitempty"`
	Floor  bool   `json:"floor,omitempty"`
	// Snapshot: each run restored the image's snapshot taken at
	// all-ready instead of booting (kitrun bench --from-snapshot).
	Snapshot bool `json:"snapshot,omitempty"`
	// GitCommit is the commit of the git repository the spec is in, when
	// it is in one: what the history ties a change to.
	GitCommit string `json:"git_commit,omitempty"`
	// Samples are the measured runs, warm-up excluded, in run order.
	Samples []Sample `json:"samples"`
	// Stats summarises the successful samples, by metric name.
	Stats map[string]Stats `json:"stats"`
	// Failed counts samples that failed.
	Failed int `json:"failed"`
}

// Resources are what a configuration's machine is given.
func (c *Config) Resources() hypervisor.Resources {
	return hypervisor.Resources{Machine: c.Machine, Accel: c.Accel, MemoryMiB: c.MemMiB}
}

// Sample is one run of a configuration.
type Sample struct {
	Run int `json:"run"`
	// Node is the machine the run was on ($SLURMD_NODENAME in a Slurm
	// job, else the hostname); empty in results from before the field.
	Node    string             `json:"node,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Error is why the run failed; a failed sample has no metrics.
	Error string `json:"error,omitempty"`
}

// Stats summarises one metric over the successful samples.
type Stats struct {
	Unit   string  `json:"unit"`
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
	Stddev float64 `json:"stddev"` // sample standard deviation (n-1)
	CV     float64 `json:"cv"`     // stddev / mean
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	P95    float64 `json:"p95"`
	// Estimate, CILow and CIHigh are set for paired ratios (ratio.*): the
	// geometric mean of the per-round ratios and its 95 % confidence
	// interval (Student's t on their logarithms).
	Estimate float64 `json:"estimate,omitempty"`
	CILow    float64 `json:"ci_low,omitempty"`
	CIHigh   float64 `json:"ci_high,omitempty"`
	// Modes, when the samples fall into separate groups (a host whose
	// boots alternate between a fast and a slow slot, say), are the groups,
	// lowest first; a median hides them.
	Modes []Mode `json:"modes,omitempty"`
}

// Mode is one group of a metric's samples.
type Mode struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

// Metric describes a metric: its unit, which direction is better, and
// whether it is exact (sizes do not vary between runs: benchstat's
// assume=exact).
type Metric struct {
	Name  string
	Unit  string // "s", "B", "ratio"
	Lower bool   // lower is better
	Exact bool
	Doc   string
}
