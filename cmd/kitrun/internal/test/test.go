// Package test is `kitrun test`: run a directory of test cases on real VMs.
package test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/testcases"
	"github.com/kitrun/kitrun/testcases/executor"
)

// Options are test's flags and arguments.
type Options struct {
	Dir        string
	Parallel   int
	Labels     []string
	Run        []string
	Timeout    time.Duration
	Retries    int
	JUnit      string
	JSON       string
	ResultsDir string
	Arch       []string
	MemBudget  string
	hypervisor.Resources
	// Format boots every test's image in a disk format instead of directly.
	Format   string
	CacheDir string
	// NoSnapshot boots every test cold (no snapshot at all-ready).
	NoSnapshot bool
	cmdutil.BackendOptions
	// Shard runs one part of the plan, "i/N".
	Shard string
	// Executor is local or slurm; Slurm its settings.
	Executor string
	Slurm    executor.Slurm
	// ShardArgs are the flags a shard job is given: those set on this
	// command line, but the executor's and the reports'.
	ShardArgs []string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run test cases (spec.yml + test.yml directories) on real VMs",
		Long: `Run the test cases under DIR: each directory holding a spec.yml and a
test.yml is one test (NNN_ prefixes order them and are stripped from names).
Every test builds its image, boots it, checks its test.yml's assertions and
the implicit ones (no panic, no unexpected service failure, a clean
power-off), and powers it off. One line is printed per finished test, then
"N passed, N failed, N skipped". Logs of every test (console, events,
assertions) go to --results; --junit and --json write reports.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			o.ShardArgs = executor.PassOn(cmd.Flags(), "shard", "junit", "json", "results")
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Parallel, "parallel", "j", 1, "tests to run at once (within --mem-budget)")
	f.StringArrayVarP(&o.Labels, "labels", "l", nil, "label filter: network,!slow requires network and excludes slow (repeatable)")
	f.StringArrayVar(&o.Run, "run", nil, "run only tests whose name (or group) matches a glob, e.g. 'services/*' (repeatable, comma-separated)")
	f.DurationVar(&o.Timeout, "timeout", testcases.DefaultTimeout, "per-test timeout for tests whose test.yml sets none (boot and assertions)")
	f.IntVar(&o.Retries, "retries", 0, "run a failed test up to N more times; passing on a retry marks it flaky")
	f.StringVar(&o.JUnit, "junit", "", "write a JUnit XML report to this file")
	f.StringVar(&o.JSON, "json", "", "write a JSON report to this file")
	f.StringVar(&o.ResultsDir, "results", "", "directory for logs and reports (default out/test-results/TIMESTAMP)")
	f.StringArrayVar(&o.Arch, "arch", nil, "architectures to run on: "+strings.Join(arch.Names(), ", ")+" (repeatable, comma-separated; default the host's)")
	f.StringVar(&o.MemBudget, "mem-budget", "", "cap on the sum of running guests' memory, e.g. 2G (default half the host's available memory)")
	f.StringVar(&o.Accel, "accel", hypervisor.DefaultAccel, "accelerator: auto (probe the host's: KVM, hvf on macOS, whpx on Windows; else TCG), kvm, hvf, whpx or tcg")
	f.StringVar(&o.Machine, "machine", "", "machine type (QEMU x86_64: q35, microvm; aarch64: virt)")
	f.StringVar(&o.Format, "format", "", "boot each image in a disk format (built if needed), e.g. raw-efi, iso-bios, qcow2")
	f.StringVar(&o.CacheDir, "cache-dir", "", "kitrun's cache (default $KITRUN_CACHE or ~/.cache/kitrun)")
	f.BoolVar(&o.NoSnapshot, "no-snapshot", false, "boot every test cold; by default tests about the running system (no boot-time assertion, no `snapshot: false`) start from a snapshot of their machine taken at all-ready, kept in the cache")
	cmdutil.AddBackendFlags(cmd, &o.BackendOptions)
	f.StringVar(&o.Shard, "shard", "", "run only part i of N of the selected tests, e.g. 2/4 (a deterministic split; groups stay whole)")
	executor.AddSlurmFlags(f, &o.Executor, &o.Slurm, "how many jobs the tests are split into")
	return cmd
}

// Run runs the tests; it returns an error carrying ExitTestsFailed when any
// test failed.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	labels, err := testcases.ParseLabelFilter(o.Labels...)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	names, err := testcases.ParseNameFilter(o.Run...)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	budget := 0
	if o.MemBudget != "" {
		if budget, err = hypervisor.ParseMemory(o.MemBudget); err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--mem-budget: %w", err))
		}
	}
	if o.Parallel < 1 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("-j must be at least 1, not %d", o.Parallel))
	}
	if o.Retries < 0 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--retries must not be negative"))
	}
	shard, err := testcases.ParseShardFlag(o.Shard)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--shard: %w", err))
	}
	if o.Executor == "" {
		o.Executor = "local"
	}
	if err := executor.Check(o.Executor); err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--executor: %w", err))
	}
	if st, err := os.Stat(o.Dir); err != nil || !st.IsDir() {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("%s: not a directory of test cases", o.Dir))
	}

	backend, err := o.BackendOptions.Open()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if o.Format == "" {
		o.Format = o.BackendOptions.DefaultFormat()
	}
	// Ctrl-C stops the run: running VMs are killed, the rest skipped, and
	// the reports still written.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ex executor.Executor = executor.Local{}
	if o.Executor == "slurm" {
		if shard != (testcases.Shard{}) {
			return cmdutil.WithCode(cmdutil.ExitFailure, errors.New("--shard is for one shard's run; with --executor slurm give --shards"))
		}
		o.Slurm.Out = stdout
		ex = &o.Slurm
	}
	launcher := &testcases.VMLauncher{Backend: backend, Resources: o.Resources, Format: o.Format, CacheDir: o.CacheDir}
	if !o.NoSnapshot {
		launcher.Snapshots = vm.SnapshotCache(cmp.Or(o.CacheDir, assemble.DefaultCacheDir()))
	}
	s, err := ex.RunTests(sigCtx, testcases.Options{
		Dir: o.Dir, Arches: o.Arch, Labels: labels, Names: names,
		Parallel: o.Parallel, MemBudgetMiB: budget, Timeout: o.Timeout, Retries: o.Retries,
		ResultsDir: o.ResultsDir, Out: stdout, Shard: shard,
		Launcher: launcher,
	}, append([]string{fmt.Sprintf("--parallel=%d", o.Parallel)}, o.ShardArgs...))
	if s == nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	var reportErrs []error
	if err != nil {
		reportErrs = append(reportErrs, err)
	}
	if o.JUnit != "" {
		if err := testcases.WriteJUnit(o.JUnit, s); err != nil {
			reportErrs = append(reportErrs, fmt.Errorf("--junit: %w", err))
		}
	}
	if o.JSON != "" {
		if err := s.WriteJSON(o.JSON); err != nil {
			reportErrs = append(reportErrs, fmt.Errorf("--json: %w", err))
		}
	}
	switch {
	case s.Interrupted:
		return cmdutil.WithCode(cmdutil.ExitInterrupted, errors.Join(append([]error{errors.New("interrupted")}, reportErrs...)...))
	case !s.OK():
		// The closing line has said it all; only report-writing problems
		// are worth another word.
		return &cmdutil.ExitError{Code: cmdutil.ExitTestsFailed, Err: errors.Join(reportErrs...)}
	case len(reportErrs) > 0:
		return cmdutil.WithCode(cmdutil.ExitFailure, errors.Join(reportErrs...))
	}
	return nil
}
