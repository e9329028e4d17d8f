// Package bench is `kitrun bench`: boot images repeatedly and report boot
// time by stage, memory and disk use, with statistics.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	kbench "github.com/kitrun/kitrun/bench"
	khistory "github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/floor"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/bench/compare"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/internal/statedir"
	"github.com/kitrun/kitrun/testcases/executor"
)

// Options are bench's flags and arguments.
type Options struct {
	Targets []string
	Runs    int
	Warmup  int
	Floor   bool
	// FromSnapshot benches a restore from a snapshot beside each cold boot.
	FromSnapshot bool
	Machines     []string
	Mems         []string
	Accels       []string
	Arches       []string
	// Format is the report format; ImageFormats the image formats booted
	// (a dimension, like machines).
	Format       string
	ImageFormats []string
	Output       string
	ResultsDir   string
	Metrics      []string
	Settle       time.Duration
	Cooldown     time.Duration
	Timeout      time.Duration
	// Record appends the results to the history at DB.
	Record bool
	DB     string
	// Executor is local or slurm; Slurm its settings; SameNode keeps a
	// configuration's runs on one node; JobArgs the flags each job gets.
	Executor string
	Slurm    executor.Slurm
	SameNode bool
	JobArgs  []string
	cmdutil.BuildOptions
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "bench SPEC|IMAGE...",
		Short: "Measure boot time by stage, memory and disk use, repeatedly, with statistics",
		Long: `Boot every spec or image on every combination of --machine, --mem, --accel
and --arch, --runs times each after --warmup unmeasured runs, interleaving the
configurations run by run. Reports the median, mean, stddev, CV, min, max and
p95 of every metric (README: "kitrun bench"). With --floor the floor (same
kernel and machine, an init that powers off at once) runs beside them and
every all-ready time is also given as a ratio to it.

Results go to -o in --format, else to stdout; the JSON is always also saved
in --results-dir, after every run, so an interrupted bench keeps its samples.
Ctrl-C finishes the run in progress and reports what was measured.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Targets = args
			o.JobArgs = executor.PassOn(cmd.Flags(), "runs", "output", "format", "results-dir", "record", "db", "same-node")
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Runs, "runs", 10, "measured runs per configuration")
	f.IntVar(&o.Warmup, "warmup", 1, "unmeasured runs per configuration first")
	f.BoolVar(&o.Floor, "floor", false, "bench the floor beside each configuration and report ratios to it")
	f.BoolVar(&o.FromSnapshot, "from-snapshot", false, "also bench each direct-boot configuration restored from its snapshot taken at all-ready (ID suffix /snapshot; built in the warm-up, kept in the cache): boot.restored, boot.reseeded, and ratio.all_ready_cold, each run's restore over its cold twin's boot")
	f.StringSliceVar(&o.Machines, "machine", nil, "machine types, comma separated (default: each arch's default)")
	f.StringSliceVar(&o.Mems, "mem", []string{hypervisor.FormatMemory(hypervisor.DefaultMemoryMiB)}, "guest memory sizes, comma separated")
	f.StringSliceVar(&o.Accels, "accel", []string{hypervisor.DefaultAccel}, "accelerators, comma separated: auto, kvm, hvf, whpx, tcg")
	f.StringSliceVar(&o.Arches, "arch", nil, "architectures, comma separated (default: the host's)")
	f.StringVar(&o.Format, "format", kbench.FormatTable, "output format: "+strings.Join(kbench.Formats, ", "))
	f.StringVarP(&o.Output, "output", "o", "", "write the results to this file (atomically) instead of stdout")
	f.StringVar(&o.ResultsDir, "results-dir", defaultResultsDir(), "where the JSON results of every bench are kept")
	f.StringSliceVar(&o.Metrics, "metric", nil, "report only these metrics (names, or families like mem.*)")
	f.DurationVar(&o.Settle, "settle", time.Second, "wait after all-ready before measuring memory")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "deadline for each boot to reach all-ready")
	f.DurationVar(&o.Cooldown, "cooldown", time.Second, "pause between runs (back-to-back VMs are not independent on every host)")
	f.StringSliceVar(&o.ImageFormats, "image-format", nil, "image formats to boot, comma separated: kernel+initrd (direct boot, the default) or disk formats such as raw-efi, iso-bios, qcow2")
	f.StringVar(&o.Compression, "compression", "", "initramfs compression for specs (default zstd)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "kitrun's cache (default $KITRUN_CACHE or ~/.cache/kitrun)")
	f.BoolVar(&o.Record, "record", false, "append the results to the history (see kitrun history)")
	f.StringVar(&o.DB, "db", khistory.DefaultPath(), "the history --record appends to (a SQLite file)")
	executor.AddSlurmFlags(f, &o.Executor, &o.Slurm, "with --same-node=false, how many jobs each target's runs are split over")
	f.BoolVar(&o.SameNode, "same-node", true, "slurm: keep every configuration's runs on one node (false: split them over --shards jobs; samples then name their node and comparisons warn)")
	cmdutil.AddBackendFlags(cmd, &o.BackendOptions)
	cmd.AddCommand(compare.New())
	return cmd
}

func defaultResultsDir() string { return filepath.Join(statedir.Dir(), "bench") }

// Run benches the targets.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if !contains(kbench.Formats, o.Format) {
		err := fmt.Errorf("unknown report format %q; valid: %s", o.Format, strings.Join(kbench.Formats, ", "))
		if _, derr := disk.Lookup(o.Format); derr == nil || o.Format == image.FormatDirect {
			// --format is the report's; the image's is a flag of its own.
			err = fmt.Errorf("%w (%s is an image format: use --image-format %s)", err, o.Format, o.Format)
		}
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if err := kbench.ValidateMetricNames(o.Metrics); err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if o.Runs < 1 || o.Warmup < 0 {
		return cmdutil.WithCode(cmdutil.ExitFailure, errors.New("--runs must be at least 1 and --warmup at least 0"))
	}
	var mems []int
	for _, s := range o.Mems {
		m, err := hypervisor.ParseMemory(s)
		if err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, err)
		}
		mems = append(mems, m)
	}
	if len(o.ImageFormats) == 0 {
		if f := o.BackendOptions.DefaultFormat(); f != "" {
			o.ImageFormats = []string{f}
		}
	}
	arches := o.Arches
	if len(arches) == 0 {
		arches = []string{arch.Host().Name}
	}
	if o.Executor != "" && o.Executor != "local" {
		if err := executor.Check(o.Executor); err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--executor: %w", err))
		}
		return runSlurm(ctx, o, stdout, stderr)
	}
	var images []*image.Image
	// The commit of each spec's repository, by spec name: what the
	// history ties a change to.
	commits := map[string]string{}
	for _, a := range arches {
		for _, t := range o.Targets {
			bo := o.BuildOptions
			bo.Arch = a
			for _, f := range o.ImageFormats {
				if f != image.FormatDirect {
					bo.Formats = append(bo.Formats, f)
				}
			}
			img, err := cmdutil.LoadImage(ctx, t, bo, stderr)
			if err != nil {
				return err
			}
			images = append(images, img)
			if c := cmdutil.GitCommit(ctx, t); c != "" {
				commits[img.Manifest.Name] = c
			}
		}
	}
	cache := o.CacheDir
	if cache == "" {
		cache = assemble.DefaultCacheDir()
	}
	// Ctrl-C ends the bench after the run in progress; a second one is
	// the default (kitrun exits, QEMU dies with it).
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() { <-sigCtx.Done(); stop() }()

	backend, err := o.BackendOptions.Open()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	qemuVersion, _ := backend.Version(ctx, images[0].Arch)
	saved := filepath.Join(o.ResultsDir, time.Now().UTC().Format("20060102T150405Z")+".json")
	progress := newProgress(stderr)
	// A bench that cannot save its results says so at once (it may run for
	// hours), carries on, and fails at the end.
	said := false
	save := func(r *kbench.Results) error {
		err := os.MkdirAll(o.ResultsDir, 0o755)
		if err == nil {
			err = kbench.WriteFile(saved, r, kbench.FormatJSON, kbench.ReportOptions{})
		}
		if err != nil && !said {
			said = true
			progress.interrupt()
			fmt.Fprintf(stderr, "kitrun: results not saved: %v\n", err)
		}
		return err
	}
	plan := kbench.Plan{
		Images: images, Machines: o.Machines, MemMiB: mems, Accels: o.Accels, Formats: o.ImageFormats,
		Runs: o.Runs, Warmup: o.Warmup, Floor: o.Floor,
		FloorInitrd: func(a arch.Arch) (string, error) {
			return floor.Build(ctx, a, "", cache)
		},
		Settle: o.Settle, Timeout: o.Timeout, Cooldown: o.Cooldown, Backend: backend,
		Progress: progress.update,
		Checkpoint: func(r *kbench.Results) {
			r.QEMU = qemuVersion
			save(r)
		},
	}
	if o.FromSnapshot {
		plan.Snapshots = vm.SnapshotCache(cache)
	}
	res, err := kbench.Run(sigCtx, plan)
	progress.done()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	res.QEMU = qemuVersion
	res.Backend = backend.Name()
	for i := range res.Configs {
		if !res.Configs[i].Floor {
			res.Configs[i].GitCommit = commits[res.Configs[i].Name]
		}
	}
	return finish(ctx, o, res, saved, save, stdout, stderr)
}

// runSlurm runs the bench as Slurm jobs and reports the merged results as
// a local bench does.
func runSlurm(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Slurm.Out = stderr
	jobsDir := filepath.Join(o.ResultsDir, "slurm-"+time.Now().UTC().Format("20060102T150405Z"))
	res, warnings, err := o.Slurm.RunBench(sigCtx, executor.BenchRequest{
		Targets: o.Targets, Args: o.JobArgs, Runs: o.Runs, SameNode: o.SameNode, ResultsDir: jobsDir, Out: stderr,
	})
	for _, w := range warnings {
		fmt.Fprintf(stderr, "kitrun: warning: %s\n", w)
	}
	if res == nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kitrun: %v\n", err)
	}
	saved := filepath.Join(o.ResultsDir, time.Now().UTC().Format("20060102T150405Z")+".json")
	save := func(r *kbench.Results) error {
		err := os.MkdirAll(o.ResultsDir, 0o755)
		if err == nil {
			err = kbench.WriteFile(saved, r, kbench.FormatJSON, kbench.ReportOptions{})
		}
		return err
	}
	ferr := finish(ctx, o, res, saved, save, stdout, stderr)
	if err != nil && ferr == nil {
		return cmdutil.WithCode(cmdutil.ExitBenchFailed, err)
	}
	return ferr
}

// finish saves, records and reports the results of a bench.
func finish(ctx context.Context, o *Options, res *kbench.Results, saved string, save func(*kbench.Results) error, stdout, stderr io.Writer) error {
	saveErr := save(res)
	if saveErr == nil {
		fmt.Fprintf(stderr, "kitrun: results saved in %s\n", saved)
	}
	if o.Record {
		if err := record(ctx, o.DB, res, saved, stderr); err != nil {
			saveErr = errors.Join(saveErr, err)
		}
	}
	ro := kbench.ReportOptions{Metrics: o.Metrics}
	if o.Output != "" {
		if err := kbench.WriteFile(o.Output, res, o.Format, ro); err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, err)
		}
		fmt.Fprintf(stderr, "kitrun: results written to %s\n", o.Output)
	} else if err := kbench.Write(stdout, res, o.Format, ro); err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if saveErr != nil {
		saveErr = fmt.Errorf("results not saved: %w", saveErr)
	}
	if res.Interrupted {
		return cmdutil.WithCode(cmdutil.ExitInterrupted, errors.Join(errors.New("interrupted; the finished runs are reported"), saveErr))
	}
	if n := res.Failures(); n > 0 {
		return cmdutil.WithCode(cmdutil.ExitBenchFailed, errors.Join(fmt.Errorf("%d run(s) failed; see the failed samples", n), saveErr))
	}
	return cmdutil.WithCode(cmdutil.ExitFailure, saveErr)
}

// record appends the results to the history; source is the saved JSON,
// which the dashboard links each point to.
func record(ctx context.Context, db string, res *kbench.Results, source string, stderr io.Writer) error {
	s, err := khistory.Open(db)
	if err != nil {
		return fmt.Errorf("not recorded: %w", err)
	}
	defer s.Close()
	rec, err := s.Record(ctx, res, source)
	if err != nil {
		return fmt.Errorf("not recorded: %w", err)
	}
	fmt.Fprintf(stderr, "kitrun: recorded as run #%d in %s (%d samples)\n", rec.RunID, db, rec.Samples)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// progress shows a bar on a terminal and one line per run elsewhere.
type progress struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		p.tty = cmdutil.IsTerminal(f)
	}
	return p
}

func (p *progress) update(pr kbench.Progress) {
	what := "all-ready " + seconds(pr.Sample.Metrics["boot.all_ready"])
	if pr.Config.Floor {
		what = "power-off " + seconds(pr.Sample.Metrics["boot.power_off"])
	}
	if pr.Sample.Error != "" {
		what = "FAILED: " + pr.Sample.Error
	}
	if pr.Warmup {
		what += " (warm-up)"
	}
	if !p.tty {
		fmt.Fprintf(p.w, "run %d/%d %s: %s\n", pr.Done, pr.Total, pr.Config.ID, what)
		return
	}
	const width = 30
	filled := width * pr.Done / pr.Total
	fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %d/%d %s: %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		pr.Done, pr.Total, pr.Config.ID, what)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// interrupt ends the bar's line, so that a message can follow.
func (p *progress) interrupt() { p.done() }

func seconds(v float64) string { return fmt.Sprintf("%.3fs", v) }
