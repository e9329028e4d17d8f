package history

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/kitrun/kitrun/bench"
)

// This file owns writing results into the store.

// Recorded says what Record did with one results file.
type Recorded struct {
	RunID int64
	// Duplicate is set when the store already had this run (same start
	// time and host): recording or importing twice adds nothing.
	Duplicate bool
	Samples   int
}

// runKey identifies a bench run across files: a results file copied,
// re-saved or imported twice is the same run.
func runKey(r *bench.Results) string {
	return r.Started.UTC().Format(time.RFC3339Nano) + "|" + r.Host.Hostname
}

// Record adds one bench's results to the store, in one transaction: the
// run, its configurations, every sample of every metric, the failed
// samples, and a median with its 95% confidence interval per metric.
// source names the results file, for the dashboard's links to raw results.
func (s *Store) Record(ctx context.Context, r *bench.Results, source string) (Recorded, error) {
	if r.Started.IsZero() {
		return Recorded{}, fmt.Errorf("%s: results without a start time cannot be placed in a history", source)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Recorded{}, fmt.Errorf("history %s: %w", s.path, err)
	}
	defer tx.Rollback()
	var rec Recorded
	err = tx.QueryRowContext(ctx, "SELECT id FROM runs WHERE run_key = ?", runKey(r)).Scan(&rec.RunID)
	switch {
	case err == nil:
		rec.Duplicate = true
		return rec, nil
	case err != sql.ErrNoRows:
		return rec, fmt.Errorf("history %s: %w", s.path, err)
	}
	backend := r.Backend
	if backend == "" {
		backend = "qemu" // results from before the field: QEMU was the only backend
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO runs (run_key, started, finished, kitrun_version, qemu_version, backend,
		host_name, host_os, host_kernel, host_cpu, host_cpus, host_mem_bytes, host_goarch,
		runs, warmup, interrupted, source, recorded) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		runKey(r), formatTime(r.Started), formatTime(r.Finished), r.Kitrun, r.QEMU, backend,
		r.Host.Hostname, r.Host.OS, r.Host.Kernel, r.Host.CPU, r.Host.CPUs, r.Host.MemBytes, r.Host.GoArch,
		r.Runs, r.Warmup, r.Interrupted, source, formatTime(time.Now()))
	if err != nil {
		return rec, fmt.Errorf("history %s: recording run: %w", s.path, err)
	}
	if rec.RunID, err = res.LastInsertId(); err != nil {
		return rec, err
	}
	insConfig, err := tx.PrepareContext(ctx, `INSERT INTO configs (run_id, config, name, spec, arch, machine, mem_mib,
		accel, accel_used, kernel_version, format, floor, git_commit) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return rec, err
	}
	insSample, err := tx.PrepareContext(ctx, "INSERT INTO samples (config_id, metric, run, value) VALUES (?,?,?,?)")
	if err != nil {
		return rec, err
	}
	insFailure, err := tx.PrepareContext(ctx, "INSERT INTO failures (config_id, run, error) VALUES (?,?,?)")
	if err != nil {
		return rec, err
	}
	insSummary, err := tx.PrepareContext(ctx, "INSERT INTO summaries (config_id, metric, n, median, lo, hi) VALUES (?,?,?,?,?,?)")
	if err != nil {
		return rec, err
	}
	for _, c := range r.Configs {
		res, err := insConfig.ExecContext(ctx, rec.RunID, c.ID, c.Name, c.Spec, c.Arch, c.Machine, c.MemMiB,
			c.Accel, c.AccelUsed, c.Kernel, c.Format, c.Floor, c.GitCommit)
		if err != nil {
			return rec, fmt.Errorf("history %s: recording configuration %s: %w", s.path, c.ID, err)
		}
		cid, err := res.LastInsertId()
		if err != nil {
			return rec, err
		}
		values := map[string][]float64{}
		for _, smp := range c.Samples {
			if smp.Error != "" {
				if _, err := insFailure.ExecContext(ctx, cid, smp.Run, smp.Error); err != nil {
					return rec, fmt.Errorf("history %s: recording failed run %d of %s: %w", s.path, smp.Run, c.ID, err)
				}
				continue
			}
			for name, v := range smp.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					continue // not a measurement; SQLite would store NULL
				}
				if _, err := insSample.ExecContext(ctx, cid, name, smp.Run, v); err != nil {
					return rec, fmt.Errorf("history %s: recording %s run %d of %s: %w", s.path, name, smp.Run, c.ID, err)
				}
				values[name] = append(values[name], v)
				rec.Samples++
			}
		}
		names := make([]string, 0, len(values))
		for name := range values {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			xs := values[name]
			med, lo, hi := MedianCI(xs)
			if _, err := insSummary.ExecContext(ctx, cid, name, len(xs), med, lo, hi); err != nil {
				return rec, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return rec, fmt.Errorf("history %s: %w", s.path, err)
	}
	return rec, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// MedianCI returns the median of xs and a distribution-free confidence
// interval for it of at least 95% (order statistics: the interval
// [x(k), x(n+1-k)] covers the median with probability 1 - 2·P(Bin(n, ½) < k)).
// With too few values for 95% (n < 6) the interval is the range. Empty xs
// gives NaNs.
func MedianCI(xs []float64) (median, lo, hi float64) {
	n := len(xs)
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	if n%2 == 1 {
		median = sorted[n/2]
	} else {
		median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	k := ciRank(n)
	return median, sorted[k-1], sorted[n-k]
}

// ciRank returns the largest k ≥ 1 with 1 - 2·P(Bin(n, ½) ≤ k-1) ≥ 0.95,
// or 1 (the range) when none is.
func ciRank(n int) int {
	best := 1
	// cdf = P(Bin(n,½) ≤ k-1), accumulated term by term.
	cdf, term := 0.0, math.Pow(0.5, float64(n))
	for k := 1; k <= n/2; k++ {
		cdf += term
		if 1-2*cdf < 0.95 {
			break
		}
		best = k
		term = term * float64(n-k+1) / float64(k)
	}
	return best
}

func timeUTC(unix int64) time.Time { return time.Unix(unix, 0).UTC() }
