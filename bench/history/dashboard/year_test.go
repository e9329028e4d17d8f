package dashboard

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/bench/history/historytest"
)

// The scale: one year of nightly runs of 10 configurations, 30
// metrics, 10 samples each (1.1 M samples).
const yearRuns, yearConfigs, yearSamples = 365, 10, 10

var (
	yearOnce sync.Once
	yearPath string
	yearErr  error
)

// yearHistory generates the year once per test binary, in
// $KITRUN_BENCH_HISTORY when set (kept, and reused when it is already
// there), else in a temporary directory. Configuration 3 is 15% slower from
// night 300 on.
func yearHistory(b *testing.B) string {
	yearOnce.Do(func() {
		path := os.Getenv("KITRUN_BENCH_HISTORY")
		if path == "" {
			dir, err := os.MkdirTemp("", "kitrun-year-")
			if err != nil {
				yearErr = err
				return
			}
			path = filepath.Join(dir, "history.db")
		}
		yearPath = path
		s, err := history.Open(path)
		if err != nil {
			yearErr = err
			return
		}
		defer s.Close()
		runs, err := s.Runs(context.Background())
		if err != nil || len(runs) == yearRuns {
			yearErr = err
			return
		}
		yearErr = historytest.Fill(context.Background(), s, historytest.Options{Runs: yearRuns, Configs: yearConfigs,
			Samples: yearSamples, Seed: 42, Step: func(c, n int) float64 {
				if c == 3 && n >= 300 {
					return 0.15
				}
				return 0
			}})
	})
	if yearErr != nil {
		b.Fatal(yearErr)
	}
	return yearPath
}

// BenchmarkDashboardYear builds the page of a year of nightly history
// (raw result files excluded: they are written once per run, by the nightly
// that records it) and reports its size.
func BenchmarkDashboardYear(b *testing.B) {
	s, err := history.Open(yearHistory(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dir := b.TempDir()
	var st Stats
	b.ResetTimer()
	for b.Loop() {
		st, err = Build(context.Background(), s, Options{Dir: dir, NoRawResults: true})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.HTMLBytes), "html-B")
	b.ReportMetric(float64(st.Points), "points")
	b.ReportMetric(float64(st.Samples), "samples-shipped")
	b.ReportMetric(float64(st.ChangePoints), "change-points")
}

// BenchmarkCheckYear runs `kitrun history check` on the year.
func BenchmarkCheckYear(b *testing.B) {
	s, err := history.Open(yearHistory(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var res *history.CheckResult
	b.ResetTimer()
	for b.Loop() {
		res, err = s.Check(context.Background(), history.CheckOptions{MaxRegression: 0.05})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(res.Checked), "series")
	b.ReportMetric(float64(len(res.Findings)), "findings")
}
