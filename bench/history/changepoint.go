package history

import (
	"math"
	"slices"

	"github.com/kitrun/kitrun/bench"
)

// This file owns change-point detection over a series of runs: a windowed
// Mann–Whitney test with a minimum effect. At every run i it compares the
// window of runs before i with the window from i on; a change point is a
// run where the two windows differ significantly (p < Alpha) AND their
// medians differ by at least MinEffect, the best such run of each stretch
// of consecutive candidates. The minimum effect is what keeps a noisy
// series quiet: with hundreds of samples a test finds differences of 0.5%
// that nobody would act on, and host noise between nights (one slow night)
// is a real difference, but not a change of the software.
//
// The unit of observation is the run when both windows hold at least
// minRunsForMedians runs: run medians vary between nights more than
// samples within a night, and pooling the samples of a window would treat
// one slow night as ten independent slow samples. With fewer runs (a new
// history, or the newest runs at the end of a series) the samples are
// pooled, so that two runs of five samples can still show a step.

// DetectOptions tunes DetectChanges.
type DetectOptions struct {
	// Window is how many runs each side of a candidate are compared
	// (default 8).
	Window int
	// Alpha is the significance level (default 0.01).
	Alpha float64
	// MinEffect is the smallest relative change of the median that counts
	// (default 0.05: 5%).
	MinEffect float64
	// Exact says the series has no noise (a size): every change of a
	// run's median is a change point, with confidence 1.
	Exact bool
}

const (
	defaultWindow     = 10
	defaultDetectP    = 0.01
	defaultMinEffect  = 0.05
	minRunsForMedians = 5
)

func (o DetectOptions) withDefaults() DetectOptions {
	if o.Window <= 0 {
		o.Window = defaultWindow
	}
	if o.Alpha <= 0 {
		o.Alpha = defaultDetectP
	}
	if o.MinEffect <= 0 {
		o.MinEffect = defaultMinEffect
	}
	return o
}

// ChangePoint is a run where a series changed.
type ChangePoint struct {
	// Index is the first run (index into the series) of the new level.
	Index int
	// Before and After are the medians of the windows either side.
	Before, After float64
	// Effect is the relative change of the median, (After-Before)/|Before|.
	Effect float64
	// P is the Mann–Whitney p-value of the windows; Confidence is 1-P.
	P, Confidence float64
}

// DetectChanges finds the change points of a series, given as each run's
// samples, oldest first. A run without samples is skipped (it neither
// hides nor makes a change).
func DetectChanges(runs [][]float64, opts DetectOptions) []ChangePoint {
	opts = opts.withDefaults()
	// Index the runs that have samples; medians once.
	var idx []int
	var medians []float64
	for i, r := range runs {
		if len(r) > 0 {
			idx = append(idx, i)
			medians = append(medians, median(r))
		}
	}
	var found []ChangePoint
	if opts.Exact {
		for j := 1; j < len(idx); j++ {
			if medians[j] != medians[j-1] {
				found = append(found, ChangePoint{Index: idx[j], Before: medians[j-1], After: medians[j],
					Effect: relative(medians[j-1], medians[j]), P: 0, Confidence: 1})
			}
		}
		return found
	}
	// Strongest first (binary segmentation): the best candidate of the
	// whole series is accepted, then the windows of the others stop at it,
	// so that a real step does not leak into its neighbours' windows and
	// show up again as a second, false change a few runs away.
	var cuts []int // accepted splits, as indices into idx
	for {
		best, bestJ := ChangePoint{}, -1
		for j := 1; j < len(idx); j++ {
			lo, hi := max(0, j-opts.Window), min(len(idx), j+opts.Window)
			taken := false
			for _, k := range cuts {
				switch {
				case k == j:
					taken = true
				case k < j:
					lo = max(lo, k)
				default:
					hi = min(hi, k)
				}
			}
			if taken {
				continue
			}
			c, ok := testSplit(runs, idx, medians, lo, j, hi, opts)
			if !ok {
				continue
			}
			if bestJ < 0 || c.P < best.P || (c.P == best.P && math.Abs(c.Effect) > math.Abs(best.Effect)) {
				best, bestJ = c, j
			}
		}
		if bestJ < 0 {
			break
		}
		best.Index = idx[bestJ]
		cuts = append(cuts, bestJ)
		found = append(found, best)
	}
	slices.SortFunc(found, func(a, b ChangePoint) int { return a.Index - b.Index })
	return found
}

// testSplit compares runs idx[lo:mid] against idx[mid:hi].
func testSplit(runs [][]float64, idx []int, medians []float64, lo, mid, hi int, opts DetectOptions) (ChangePoint, bool) {
	var before, after []float64
	if min(mid-lo, hi-mid) < 2 && max(mid-lo, hi-mid) >= minRunsForMedians {
		// One night against an established level: one slow night (the
		// host's, not the software's) would look like a step. It takes
		// two nights in a row; Check judges the newest night alone.
		return ChangePoint{}, false
	}
	byMedians := mid-lo >= minRunsForMedians && hi-mid >= minRunsForMedians
	if byMedians {
		before, after = medians[lo:mid], medians[mid:hi]
	} else {
		for _, k := range idx[lo:mid] {
			before = append(before, runs[k]...)
		}
		for _, k := range idx[mid:hi] {
			after = append(after, runs[k]...)
		}
	}
	c := ChangePoint{Before: median(before), After: median(after)}
	c.Effect = relative(c.Before, c.After)
	if math.Abs(c.Effect) < opts.MinEffect {
		return c, false
	}
	if !byMedians {
		// Pooled samples: every night of the shorter side must differ
		// from the other side's median by the minimum effect, in the
		// same direction, so that one slow night among two cannot carry
		// the pooled median over the threshold.
		short, other := idx[mid:hi], c.Before
		if mid-lo < hi-mid {
			short, other = idx[lo:mid], c.After
		}
		for _, k := range short {
			e := relative(other, median(runs[k]))
			if mid-lo < hi-mid {
				e = relative(median(runs[k]), other)
			}
			if math.Abs(e) < opts.MinEffect || (e > 0) != (c.Effect > 0) {
				return c, false
			}
		}
	}
	c.P = bench.MannWhitneyP(before, after)
	c.Confidence = 1 - c.P
	return c, c.P < opts.Alpha
}

func median(xs []float64) float64 {
	m, _, _ := medianSorted(xs)
	return m
}

func medianSorted(xs []float64) (float64, []float64, bool) {
	if len(xs) == 0 {
		return math.NaN(), nil, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], s, true
	}
	return (s[n/2-1] + s[n/2]) / 2, s, true
}

// relative is (new-old)/|old|: 0 when both are 0, ±Inf when only old is.
func relative(old, new float64) float64 {
	if old == 0 {
		switch {
		case new > 0:
			return math.Inf(1)
		case new < 0:
			return math.Inf(-1)
		}
		return 0
	}
	return (new - old) / math.Abs(old)
}
