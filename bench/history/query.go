package history

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/bench"
)

// This file owns reading the store back: runs, and per configuration and
// metric the series of runs with their samples and summaries.

// Run is one recorded bench run.
type Run struct {
	ID       int64
	Started  time.Time
	Kitrun   string
	QEMU     string
	Backend  string
	Host     string // host name
	HostDesc string // OS, kernel, CPU
	Source   string // the results file it was recorded from
}

// ConfigInfo describes a configuration as its newest run had it.
type ConfigInfo struct {
	ID, Name, Spec, Arch, Machine string
	MemMiB                        int
	Accel, AccelUsed, Format      string
	Floor                         bool
}

// Point is one run of one configuration, for one metric.
type Point struct {
	Run       *Run
	Kernel    string
	GitCommit string
	// N, Median, Lo and Hi summarise every sample of the run: the median
	// and its 95% confidence interval (MedianCI).
	N              int
	Median, Lo, Hi float64
	// Samples are the run's values in run order; empty when the query
	// asked for summaries only for this run.
	Samples []float64
}

// Series is one metric of one configuration over the runs, oldest first.
type Series struct {
	Config  ConfigInfo
	Backend string
	Metric  string
	Unit    string
	Lower   bool // lower is better
	Exact   bool // a size: no noise
	Points  []Point
}

// Query selects what Load reads.
type Query struct {
	// Metrics are selectors as `--metric` takes ("boot.all_ready",
	// "mem.*"); none selects every metric.
	Metrics []string
	// Configs are configuration IDs; none selects every configuration.
	Configs []string
	// Since drops runs that started before it (zero: none dropped).
	Since time.Time
	// LastRuns keeps only the newest LastRuns runs of the store (0: all).
	LastRuns int
	// ConfigRuns keeps only the newest ConfigRuns runs of each
	// configuration (0: all): the recent history of each, also when
	// several nightly jobs with different matrices share the store.
	ConfigRuns int
	// SampleRuns is how many of the newest runs get their samples read;
	// older runs get their summaries only. Negative reads every sample.
	SampleRuns int
}

// Runs returns the store's runs, oldest first.
func (s *Store) Runs(ctx context.Context) ([]*Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, started, kitrun_version, qemu_version, backend, host_name,
		host_os, host_kernel, host_cpu, source FROM runs ORDER BY started, id`)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", s.path, err)
	}
	defer rows.Close()
	var runs []*Run
	for rows.Next() {
		r := &Run{}
		var started, hostOS, kernel, cpu string
		if err := rows.Scan(&r.ID, &started, &r.Kitrun, &r.QEMU, &r.Backend, &r.Host, &hostOS, &kernel, &cpu, &r.Source); err != nil {
			return nil, fmt.Errorf("history %s: %w", s.path, err)
		}
		r.Started = parseTime(started)
		r.HostDesc = strings.Join(nonEmpty(hostOS, kernel, cpu), ", ")
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Load reads the series q selects, ordered by configuration and metric
// (report order), each oldest run first.
func (s *Store) Load(ctx context.Context, q Query) ([]*Series, error) {
	if err := bench.ValidateMetricNames(q.Metrics); err != nil {
		return nil, err
	}
	all, err := s.Runs(ctx)
	if err != nil {
		return nil, err
	}
	var runs []*Run
	for _, r := range all {
		if !r.Started.Before(q.Since) {
			runs = append(runs, r)
		}
	}
	if q.LastRuns > 0 && len(runs) > q.LastRuns {
		runs = runs[len(runs)-q.LastRuns:]
	}
	if len(runs) == 0 {
		return nil, nil
	}
	byID := make(map[int64]*Run, len(runs))
	order := make(map[int64]int, len(runs))
	for i, r := range runs {
		byID[r.ID] = r
		order[r.ID] = i
	}
	sampleFrom := 0 // index in runs of the oldest run whose samples are read
	if q.SampleRuns >= 0 {
		sampleFrom = max(0, len(runs)-q.SampleRuns)
	}
	wantConfig := map[string]bool{}
	for _, c := range q.Configs {
		wantConfig[c] = true
	}

	// Configurations of the selected runs. Run IDs are not in start order
	// (older results may be imported after newer ones), so runs are
	// matched by ID, not by range.
	type configRow struct {
		info              ConfigInfo
		run               *Run
		kernel, gitCommit string
	}
	configs := map[int64]*configRow{}
	rows, err := s.db.QueryContext(ctx, `SELECT id, run_id, config, name, spec, arch, machine, mem_mib, accel, accel_used,
		kernel_version, format, floor, git_commit FROM configs`)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", s.path, err)
	}
	for rows.Next() {
		var id, runID int64
		c := &configRow{}
		if err := rows.Scan(&id, &runID, &c.info.ID, &c.info.Name, &c.info.Spec, &c.info.Arch, &c.info.Machine,
			&c.info.MemMiB, &c.info.Accel, &c.info.AccelUsed, &c.kernel, &c.info.Format, &c.info.Floor, &c.gitCommit); err != nil {
			rows.Close()
			return nil, fmt.Errorf("history %s: %w", s.path, err)
		}
		r, ok := byID[runID]
		if !ok || (len(wantConfig) > 0 && !wantConfig[c.info.ID]) {
			continue
		}
		c.run = r
		configs[id] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if q.ConfigRuns > 0 {
		byConfig := map[string][]int64{}
		for id, c := range configs {
			byConfig[c.info.ID] = append(byConfig[c.info.ID], id)
		}
		for _, ids := range byConfig {
			if len(ids) <= q.ConfigRuns {
				continue
			}
			slices.SortFunc(ids, func(a, b int64) int { return order[configs[a].run.ID] - order[configs[b].run.ID] })
			for _, id := range ids[:len(ids)-q.ConfigRuns] {
				delete(configs, id)
			}
		}
	}
	var allCIDs, sampleCIDs []string
	for id, c := range configs {
		allCIDs = append(allCIDs, strconv.FormatInt(id, 10))
		if order[c.run.ID] >= sampleFrom {
			sampleCIDs = append(sampleCIDs, strconv.FormatInt(id, 10))
		}
	}

	type seriesKey struct{ config, metric string }
	type pointKey struct {
		cid    int64
		metric string
	}
	series := map[seriesKey]*Series{}
	points := map[seriesKey][]*Point{}
	byPoint := map[pointKey]*Point{}
	newest := map[seriesKey]int{}
	point := func(cid int64, metric string) *Point {
		if p := byPoint[pointKey{cid, metric}]; p != nil {
			return p
		}
		c := configs[cid]
		k := seriesKey{c.info.ID, metric}
		sr := series[k]
		if sr == nil {
			sr = &Series{Metric: metric}
			if m, ok := bench.LookupMetric(metric); ok {
				sr.Unit, sr.Lower, sr.Exact = m.Unit, m.Lower, m.Exact
			}
			series[k] = sr
		}
		if o, seen := newest[k]; !seen || order[c.run.ID] > o {
			// The newest run describes the configuration.
			newest[k] = order[c.run.ID]
			sr.Config, sr.Backend = c.info, c.run.Backend
		}
		p := &Point{Run: c.run, Kernel: c.kernel, GitCommit: c.gitCommit}
		byPoint[pointKey{cid, metric}] = p
		points[k] = append(points[k], p)
		return p
	}
	selected := func(metric string) bool { return bench.SelectMetric(q.Metrics, metric) }

	if len(allCIDs) > 0 {
		rows, err = s.db.QueryContext(ctx, `SELECT config_id, metric, n, median, lo, hi FROM summaries
			WHERE config_id IN (`+strings.Join(allCIDs, ",")+`)`)
		if err != nil {
			return nil, fmt.Errorf("history %s: %w", s.path, err)
		}
		for rows.Next() {
			var cid int64
			var metric string
			var n int
			var med, lo, hi float64
			if err := rows.Scan(&cid, &metric, &n, &med, &lo, &hi); err != nil {
				rows.Close()
				return nil, fmt.Errorf("history %s: %w", s.path, err)
			}
			if !selected(metric) {
				continue
			}
			p := point(cid, metric)
			p.N, p.Median, p.Lo, p.Hi = n, med, lo, hi
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if len(sampleCIDs) > 0 {
		rows, err = s.db.QueryContext(ctx, `SELECT config_id, metric, value FROM samples
			WHERE config_id IN (`+strings.Join(sampleCIDs, ",")+`) ORDER BY config_id, metric, run`)
		if err != nil {
			return nil, fmt.Errorf("history %s: %w", s.path, err)
		}
		var lastCID int64 = -1
		var lastMetric string
		var p *Point
		for rows.Next() {
			var cid int64
			var metric string
			var v float64
			if err := rows.Scan(&cid, &metric, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("history %s: %w", s.path, err)
			}
			if cid != lastCID || metric != lastMetric {
				lastCID, lastMetric, p = cid, metric, nil
				if selected(metric) {
					p = point(cid, metric)
				}
			}
			if p != nil {
				p.Samples = append(p.Samples, v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for k, sr := range series {
		ps := points[k]
		sort.SliceStable(ps, func(i, j int) bool { return order[ps[i].Run.ID] < order[ps[j].Run.ID] })
		sr.Points = make([]Point, len(ps))
		for i, p := range ps {
			sr.Points[i] = *p
		}
	}
	out := make([]*Series, 0, len(series))
	for _, sr := range series {
		out = append(out, sr)
	}
	metricRank := map[string]int{}
	var names []string
	for _, sr := range out {
		if _, ok := metricRank[sr.Metric]; !ok {
			metricRank[sr.Metric] = 0
			names = append(names, sr.Metric)
		}
	}
	bench.SortMetricNames(names)
	for i, n := range names {
		metricRank[n] = i
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Config.ID != out[j].Config.ID {
			return out[i].Config.ID < out[j].Config.ID
		}
		return metricRank[out[i].Metric] < metricRank[out[j].Metric]
	})
	return out, nil
}

// RunResults rebuilds the results of one recorded run, as `kitrun bench`
// wrote them (statistics recomputed from the samples): the raw result the
// dashboard links a point to when the original file is gone.
func (s *Store) RunResults(ctx context.Context, runID int64) (*bench.Results, error) {
	r := &bench.Results{Schema: bench.SchemaVersion}
	var started, finished string
	err := s.db.QueryRowContext(ctx, `SELECT started, finished, kitrun_version, qemu_version, backend, host_name, host_os,
		host_kernel, host_cpu, host_cpus, host_mem_bytes, host_goarch, runs, warmup, interrupted FROM runs WHERE id = ?`, runID).
		Scan(&started, &finished, &r.Kitrun, &r.QEMU, &r.Backend, &r.Host.Hostname, &r.Host.OS, &r.Host.Kernel, &r.Host.CPU,
			&r.Host.CPUs, &r.Host.MemBytes, &r.Host.GoArch, &r.Runs, &r.Warmup, &r.Interrupted)
	if err != nil {
		return nil, fmt.Errorf("history %s: run #%d: %w", s.path, runID, err)
	}
	r.Started, r.Finished = parseTime(started), parseTime(finished)
	rows, err := s.db.QueryContext(ctx, `SELECT id, config, name, spec, arch, machine, mem_mib, accel, accel_used,
		kernel_version, format, floor, git_commit FROM configs WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", s.path, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		var c bench.Config
		if err := rows.Scan(&id, &c.ID, &c.Name, &c.Spec, &c.Arch, &c.Machine, &c.MemMiB, &c.Accel, &c.AccelUsed,
			&c.Kernel, &c.Format, &c.Floor, &c.GitCommit); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
		r.Configs = append(r.Configs, c)
	}
	rows.Close()
	for i, id := range ids {
		c := &r.Configs[i]
		byRun := map[int]*bench.Sample{}
		sample := func(run int) *bench.Sample {
			if byRun[run] == nil {
				byRun[run] = &bench.Sample{Run: run}
			}
			return byRun[run]
		}
		rows, err := s.db.QueryContext(ctx, "SELECT metric, run, value FROM samples WHERE config_id = ?", id)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var metric string
			var run int
			var v float64
			if err := rows.Scan(&metric, &run, &v); err != nil {
				rows.Close()
				return nil, err
			}
			smp := sample(run)
			if smp.Metrics == nil {
				smp.Metrics = map[string]float64{}
			}
			smp.Metrics[metric] = v
		}
		rows.Close()
		rows, err = s.db.QueryContext(ctx, "SELECT run, error FROM failures WHERE config_id = ?", id)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var run int
			var msg string
			if err := rows.Scan(&run, &msg); err != nil {
				rows.Close()
				return nil, err
			}
			sample(run).Error = msg
		}
		rows.Close()
		var runs []int
		for run := range byRun {
			runs = append(runs, run)
		}
		sort.Ints(runs)
		for _, run := range runs {
			c.Samples = append(c.Samples, *byRun[run])
		}
		c.Summarize(nil)
	}
	return r, nil
}
