package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/testcases"
)

// BenchRequest is a `kitrun bench` run for the Slurm executor.
type BenchRequest struct {
	// Targets are the specs or images benched (made absolute).
	Targets []string
	// Args are the bench flags every job is given (not --runs, -o,
	// --format, --results-dir, --record, --db).
	Args []string
	Runs int
	// SameNode keeps each target's configurations, all their runs, in one
	// job (one node). Without it, with Shards > 1, a target's runs are
	// split over Shards jobs and its samples may come from several nodes
	// (each sample names its node; Merge warns).
	SameNode bool
	// ResultsDir receives the jobs' scripts, output and results.
	ResultsDir string
	Out        io.Writer
}

// RunBench runs a bench as Slurm jobs (a job per target, or per target and
// part of its runs) and merges their results into one (bench.Merge). The
// warnings name configurations whose samples mix nodes. Jobs that failed
// leave their configurations out, and make the error.
func (s *Slurm) RunBench(ctx context.Context, r BenchRequest) (merged *bench.Results, warnings []string, err error) {
	o := testcases.Options{Parallel: 1, ResultsDir: r.ResultsDir, Out: r.Out, Dir: "."}
	if err := s.defaults(&o); err != nil {
		return nil, nil, err
	}
	if r.Runs < 1 {
		return nil, nil, errors.New("runs must be at least 1")
	}
	perTarget := 1
	if !r.SameNode && s.Shards > 1 {
		perTarget = min(s.Shards, r.Runs)
	}
	var shards []*shard
	n := len(r.Targets) * perTarget
	for _, t := range r.Targets {
		abs, aerr := filepath.Abs(t)
		if aerr != nil {
			return nil, nil, aerr
		}
		for part := 0; part < perTarget; part++ {
			runs := r.Runs / perTarget
			if part < r.Runs%perTarget {
				runs++
			}
			sh := &shard{index: len(shards) + 1, results: "bench.json", what: "run(s) of " + filepath.Base(t), runs: runs}
			sh.command = func(dir string) []string {
				return append([]string{"bench", abs, "--runs", fmt.Sprint(runs), "--results-dir", dir,
					"--format", "json", "-o", filepath.Join(dir, "bench.json")}, r.Args...)
			}
			shards = append(shards, sh)
		}
	}
	saved := s.Shards
	s.Shards = n // shard i/N in the job names and lines
	defer func() { s.Shards = saved }()
	if err := s.CheckController(ctx); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.ResultsDir, "slurm"), 0o755); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(o.Out, "kitrun bench: %d target(s) in %d Slurm job(s) (run %s, job name %s); results in %s\n",
		len(r.Targets), n, s.RunID, s.JobName(), o.ResultsDir)
	defer func() {
		if cerr := s.cancelAll(o.Out); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	for _, sh := range shards {
		if err := s.submit(ctx, &o, sh); err != nil {
			return nil, nil, err
		}
	}
	interrupted := s.wait(ctx, &o, shards)
	var parts []*bench.Results
	var errs []error
	for _, sh := range shards {
		res, rerr := bench.ReadResults(filepath.Join(sh.dir, "bench.json"))
		if rerr != nil {
			errs = append(errs, fmt.Errorf("job %s (shard %d/%d, %s) ended %s%s on %s without results: %v; output in %s",
				sh.job, sh.index, n, sh.what, sh.state, reasonText(sh.reason), orUnknown(sh.node), rerr, filepath.Join(o.ResultsDir, "slurm")))
			continue
		}
		parts = append(parts, res)
	}
	if len(parts) == 0 {
		return nil, nil, errors.Join(append([]error{errors.New("no job of the bench left results")}, errs...)...)
	}
	merged, warnings = bench.Merge(parts...)
	merged.Interrupted = merged.Interrupted || interrupted
	merged.Finished = time.Now().UTC()
	var nodes []string
	for _, c := range merged.Configs {
		nodes = append(nodes, c.ID+" on "+strings.Join(c.Nodes(), ", "))
	}
	fmt.Fprintf(o.Out, "slurm: merged %d job(s): %s\n", len(parts), strings.Join(nodes, "; "))
	err = errors.Join(errs...)
	return merged, warnings, err
}
