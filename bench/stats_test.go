package bench

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	// Expected values are worked by hand; the percentile ones match
	// numpy.percentile's default (linear) method.
	tests := []struct {
		name string
		xs   []float64
		want Stats
	}{
		{
			name: "one to ten",
			xs:   []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			// stddev² = Σ(x-5.5)²/9 = 82.5/9; p95: h = 9·0.95 = 8.55,
			// between x[8] = 9 and x[9] = 10.
			want: Stats{Unit: "s", N: 10, Median: 5.5, Mean: 5.5, Stddev: 3.0276503540974917,
				CV: 3.0276503540974917 / 5.5, Min: 1, Max: 10, P95: 9.55},
		},
		{
			name: "unsorted",
			xs:   []float64{3, 1, 2},
			// p95: h = 2·0.95 = 1.9, between 2 and 3.
			want: Stats{Unit: "s", N: 3, Median: 2, Mean: 2, Stddev: 1, CV: 0.5, Min: 1, Max: 3, P95: 2.9},
		},
		{
			name: "single value",
			xs:   []float64{4.2},
			want: Stats{Unit: "s", N: 1, Median: 4.2, Mean: 4.2, Min: 4.2, Max: 4.2, P95: 4.2},
		},
		{
			name: "all tied",
			xs:   []float64{7, 7, 7, 7},
			want: Stats{Unit: "s", N: 4, Median: 7, Mean: 7, Min: 7, Max: 7, P95: 7},
		},
		{
			name: "ties and an outlier",
			xs:   []float64{1, 2, 2, 3, 10},
			// mean 3.6; Σ(x-3.6)² = 53.2, /4 = 13.3; p95: h = 3.8,
			// 3 + 0.8·(10-3).
			want: Stats{Unit: "s", N: 5, Median: 2, Mean: 3.6, Stddev: 3.646916505762094,
				CV: 1.0130323627116928, Min: 1, Max: 10, P95: 8.6},
		},
		{
			name: "zero mean",
			xs:   []float64{-1, 1},
			want: Stats{Unit: "s", N: 2, Median: 0, Mean: 0, Stddev: math.Sqrt2, CV: 0, Min: -1, Max: 1, P95: 0.9},
		},
		{
			name: "empty",
			xs:   nil,
			want: Stats{Unit: "s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(tt.xs, "s")
			if !statsEqual(got, tt.want) {
				t.Errorf("Summarize(%v) =\n %+v, want\n %+v", tt.xs, got, tt.want)
			}
		})
	}
}

func statsEqual(a, b Stats) bool {
	return a.Unit == b.Unit && a.N == b.N && approxEqual(a.Median, b.Median) && approxEqual(a.Mean, b.Mean) &&
		approxEqual(a.Stddev, b.Stddev) && approxEqual(a.CV, b.CV) && approxEqual(a.Min, b.Min) &&
		approxEqual(a.Max, b.Max) && approxEqual(a.P95, b.P95)
}

func TestSummarizeKeepsInput(t *testing.T) {
	xs := []float64{3, 1, 2}
	Summarize(xs, "")
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("Summarize reordered its input: %v", xs)
	}
}

func TestPercentile(t *testing.T) {
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct{ p, want float64 }{
		{0, 1},
		{0.25, 3.25}, // numpy.percentile(range(1, 11), 25)
		{0.5, 5.5},
		{0.95, 9.55},
		{1, 10},
	}
	for _, tt := range tests {
		if got := percentile(sorted, tt.p); !approxEqual(got, tt.want) {
			t.Errorf("percentile(1..10, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestConfigSummarize(t *testing.T) {
	c := Config{Samples: []Sample{
		{Run: 1, Metrics: map[string]float64{"boot.all_ready": 1, "mem.qemu_pss": 100, "custom.thing": 5}},
		{Run: 2, Error: "timeout"},
		{Run: 3, Metrics: map[string]float64{"boot.all_ready": 3}},
		{Run: 4, Error: "qemu exited"},
	}}
	c.Summarize(map[string]Metric{"custom.thing": {Unit: "widgets"}})
	if c.Failed != 2 {
		t.Errorf("Failed = %d, want 2", c.Failed)
	}
	want := map[string]Stats{
		"boot.all_ready": Summarize([]float64{1, 3}, "s"),
		"mem.qemu_pss":   Summarize([]float64{100}, "B"),
		"custom.thing":   Summarize([]float64{5}, "widgets"),
	}
	if len(c.Stats) != len(want) {
		t.Errorf("Stats has %d metrics, want %d: %v", len(c.Stats), len(want), c.Stats)
	}
	for name, w := range want {
		if got := c.Stats[name]; !statsEqual(got, w) {
			t.Errorf("Stats[%s] = %+v, want %+v", name, got, w)
		}
	}

	// Summarizing again replaces, rather than adds to, the previous counts.
	c.Summarize(nil)
	if c.Failed != 2 || c.Stats["custom.thing"].Unit != "" {
		t.Errorf("second Summarize: Failed = %d, custom.thing unit %q; want 2, \"\"", c.Failed, c.Stats["custom.thing"].Unit)
	}
}
