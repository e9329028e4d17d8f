package history

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kitrun/kitrun/bench"
)

// This file owns the regression check a nightly job gates on: is the newest
// run of each configuration significantly worse than its recent baseline,
// and if so, at which run did the metric change.

// CheckOptions tunes Check.
type CheckOptions struct {
	// MaxRegression is the largest worsening of the median, as a fraction
	// of the baseline's (0.05 for 5%), that is tolerated.
	MaxRegression float64
	// Alpha is the significance level of the Mann–Whitney test of the
	// newest run's samples against the baseline's (default 0.01).
	Alpha float64
	// Baseline is how many runs before the newest form the baseline
	// (default 10).
	Baseline int
	// Metrics and Configs select what is checked, as in Query.
	Metrics, Configs []string
}

// DefaultBaseline is CheckOptions.Baseline's default.
const DefaultBaseline = 10

// Finding is one metric of one configuration whose newest run is a
// regression.
type Finding struct {
	Config, Metric, Unit string
	// Newest is the run checked; Baseline the median of the baseline's
	// samples, Median the newest run's.
	Newest           *Run
	Baseline, Median float64
	BaselineRuns     int
	// Effect is the worsening, relative to the baseline (positive).
	Effect float64
	// P is the test's p-value (0 for an exact metric); Confidence 1-P.
	P, Confidence float64
	// ChangedAt is the run where the series changed: the change point
	// found over the whole checked window, else the newest run.
	ChangedAt        *Run
	ChangedGitCommit string
}

// CheckResult is what Check found.
type CheckResult struct {
	Checked  int // series checked (configurations × metrics with a newest run and a baseline)
	Findings []Finding
}

// Check compares, for every configuration and metric, the newest run
// against the Baseline runs before it, and reports those significantly
// worse by more than MaxRegression. It reads only those runs' samples: the
// newest Baseline+1 runs of each configuration.
func (s *Store) Check(ctx context.Context, opts CheckOptions) (*CheckResult, error) {
	if opts.Baseline <= 0 {
		opts.Baseline = DefaultBaseline
	}
	if opts.Alpha <= 0 {
		opts.Alpha = defaultDetectP
	}
	if opts.MaxRegression < 0 || math.IsNaN(opts.MaxRegression) {
		return nil, fmt.Errorf("maximum regression %v is negative", opts.MaxRegression)
	}
	series, err := s.Load(ctx, Query{Metrics: opts.Metrics, Configs: opts.Configs,
		ConfigRuns: opts.Baseline + 1, SampleRuns: -1})
	if err != nil {
		return nil, err
	}
	return CheckSeries(series, opts), nil
}

// CheckSeries is Check over series already loaded (with samples). A
// series is checked when its newest point has samples and it has at least
// one earlier point.
func CheckSeries(series []*Series, opts CheckOptions) *CheckResult {
	if opts.Baseline <= 0 {
		opts.Baseline = DefaultBaseline
	}
	if opts.Alpha <= 0 {
		opts.Alpha = defaultDetectP
	}
	res := &CheckResult{}
	for _, sr := range series {
		pts := sr.Points
		if len(pts) > opts.Baseline+1 {
			pts = pts[len(pts)-opts.Baseline-1:]
		}
		if len(pts) < 2 || len(pts[len(pts)-1].Samples) == 0 || sr.Unit == "" {
			continue // nothing to compare, or no direction that is worse
		}
		res.Checked++
		newest := pts[len(pts)-1]
		var base []float64
		runs := make([][]float64, len(pts))
		for i, p := range pts {
			runs[i] = p.Samples
			if i < len(pts)-1 {
				base = append(base, p.Samples...)
			}
		}
		if len(base) == 0 {
			continue
		}
		f := Finding{Config: sr.Config.ID, Metric: sr.Metric, Unit: sr.Unit, Newest: newest.Run,
			Baseline: median(base), Median: median(newest.Samples), BaselineRuns: len(pts) - 1}
		f.Effect = relative(f.Baseline, f.Median)
		if !sr.Lower {
			f.Effect = -f.Effect
		}
		if f.Effect <= opts.MaxRegression {
			continue
		}
		if sr.Exact {
			f.P = 0
		} else {
			f.P = bench.MannWhitneyP(base, newest.Samples)
			if !(f.P < opts.Alpha) {
				continue
			}
		}
		f.Confidence = 1 - f.P
		// Where did it change? The last change point in the worse
		// direction, if the series has one; else the newest run.
		f.ChangedAt, f.ChangedGitCommit = newest.Run, newest.GitCommit
		cps := DetectChanges(runs, DetectOptions{Alpha: opts.Alpha, MinEffect: max(opts.MaxRegression, 1e-9), Exact: sr.Exact})
		for i := len(cps) - 1; i >= 0; i-- {
			worse := cps[i].Effect
			if !sr.Lower {
				worse = -worse
			}
			if worse > 0 {
				f.ChangedAt, f.ChangedGitCommit = pts[cps[i].Index].Run, pts[cps[i].Index].GitCommit
				break
			}
		}
		res.Findings = append(res.Findings, f)
	}
	return res
}

// Write prints the findings: one line per regression naming the
// configuration, the metric, the change and its confidence, and the run
// (date, kitrun version, commit) where it changed.
func (r *CheckResult) Write(w io.Writer, maxRegression float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Findings) > 0 {
		fmt.Fprintf(tw, "config\tmetric\tbaseline\tnewest\tchange\tconfidence\tchanged at run\n")
	}
	for _, f := range r.Findings {
		at := fmt.Sprintf("#%d %s kitrun %s", f.ChangedAt.ID, f.ChangedAt.Started.UTC().Format(time.RFC3339), f.ChangedAt.Kitrun)
		if f.ChangedGitCommit != "" {
			at += " commit " + shortCommit(f.ChangedGitCommit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%+.1f%%\t%.4f\t%s\n", f.Config, f.Metric, FormatValue(f.Baseline, f.Unit),
			FormatValue(f.Median, f.Unit), f.Effect*100, f.Confidence, at)
	}
	tw.Flush()
	_, err := fmt.Fprintf(w, "%d regression(s) in %d series checked (worse by more than %.4g%%, significant)\n",
		len(r.Findings), r.Checked, maxRegression*100)
	return err
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// FormatValue shows a value in its unit, compactly.
func FormatValue(v float64, unit string) string {
	switch unit {
	case "s":
		if math.Abs(v) < 1 {
			return fmt.Sprintf("%.1f ms", v*1e3)
		}
		return fmt.Sprintf("%.3f s", v)
	case "B":
		units := []string{"B", "KiB", "MiB", "GiB"}
		i := 0
		for math.Abs(v) >= 1024 && i < len(units)-1 {
			v /= 1024
			i++
		}
		if i == 0 {
			return fmt.Sprintf("%.0f B", v)
		}
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return strings.TrimSpace(fmt.Sprintf("%.4g %s", v, unit))
}
