package history

import (
	"math"
	"math/rand/v2"
	"testing"
)

// synth makes a nightly series like those measured here: runs nights of
// samples each, around level(night) seconds, with 3% noise within a night,
// 2% between nights (the host's mood), one sample in 50 an outlier 1.3–2×
// slower, and one night in 40 slow as a whole (+25%).
func synth(rng *rand.Rand, runs, samples int, level func(night int) float64) [][]float64 {
	out := make([][]float64, runs)
	for n := range runs {
		night := 1 + 0.02*rng.NormFloat64()
		if rng.IntN(40) == 0 {
			night *= 1.25
		}
		for range samples {
			v := level(n) * night * (1 + 0.03*rng.NormFloat64())
			if rng.IntN(50) == 0 {
				v *= 1.3 + 0.7*rng.Float64()
			}
			out[n] = append(out[n], v)
		}
	}
	return out
}

const (
	synthRuns    = 60
	synthSamples = 10
	synthStep    = 40 // the first night of the new level
	synthSeries  = 200
)

// detectsAt reports whether cps has a change point within ±tolerance runs
// of at, in direction sign.
func detectsAt(cps []ChangePoint, at, tolerance int, sign float64) bool {
	for _, c := range cps {
		if abs(c.Index-at) <= tolerance && c.Effect*sign > 0 {
			return true
		}
	}
	return false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestDetectFalseAlarms: noisy series with outliers and slow nights but no
// change must rarely show a change point.
func TestDetectFalseAlarms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alarms, points := 0, 0
	for range synthSeries {
		cps := DetectChanges(synth(rng, synthRuns, synthSamples, func(int) float64 { return 2 }), DetectOptions{})
		if len(cps) > 0 {
			alarms++
			points += len(cps)
		}
	}
	rate := float64(alarms) / synthSeries
	t.Logf("false alarms: %d of %d flat series of %d nights (%.1f%%), %d change points in all; per night: %.3f%%",
		alarms, synthSeries, synthRuns, rate*100, points, 100*float64(points)/float64(synthSeries*synthRuns))
	if rate > 0.05 {
		t.Errorf("false-alarm rate %.1f%% > 5%%", rate*100)
	}
}

// TestDetectSteps: a step of 10% (twice the minimum effect) up or down is
// found at the right night (within two: a slow night next to the step makes
// the step's night ambiguous), and the online detection delay (how many nights
// of the new level it takes before the change point shows) is reported.
func TestDetectSteps(t *testing.T) {
	for _, step := range []float64{0.10, -0.10, 0.20} {
		rng := rand.New(rand.NewPCG(3, uint64(step*100+50)))
		found, exact := 0, 0
		var delays []int
		for range synthSeries {
			series := synth(rng, synthRuns, synthSamples, func(n int) float64 {
				if n >= synthStep {
					return 2 * (1 + step)
				}
				return 2
			})
			cps := DetectChanges(series, DetectOptions{})
			if detectsAt(cps, synthStep, 2, step) {
				found++
			}
			if detectsAt(cps, synthStep, 0, step) {
				exact++
			}
			// Online: what a nightly job sees, one night at a time.
			for night := synthStep; night < synthRuns; night++ {
				if detectsAt(DetectChanges(series[:night+1], DetectOptions{}), synthStep, 2, step) {
					delays = append(delays, night-synthStep)
					break
				}
			}
		}
		mean, worst := 0.0, 0
		for _, d := range delays {
			mean += float64(d)
			worst = max(worst, d)
		}
		mean /= math.Max(1, float64(len(delays)))
		t.Logf("step %+.0f%%: found within ±2 nights in %d of %d series (%d at the exact night); online: found in %d, delay mean %.2f nights, worst %d",
			step*100, found, synthSeries, exact, len(delays), mean, worst)
		if found < synthSeries*95/100 {
			t.Errorf("step %+.0f%% found in only %d of %d series", step*100, found, synthSeries)
		}
		if len(delays) < synthSeries*95/100 {
			t.Errorf("step %+.0f%% found online in only %d of %d series", step*100, len(delays), synthSeries)
		}
	}
}

// TestDetectDrift: a slow drift (0.1% a night, 6% over the series) is not
// a step and is mostly left alone; a fast ramp (2% a night for 10 nights)
// is reported inside the ramp.
func TestDetectDrift(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	slowFlagged := 0
	for range synthSeries {
		cps := DetectChanges(synth(rng, synthRuns, synthSamples, func(n int) float64 { return 2 * (1 + 0.001*float64(n)) }), DetectOptions{})
		if len(cps) > 0 {
			slowFlagged++
		}
	}
	rampFound := 0
	for range synthSeries {
		series := synth(rng, synthRuns, synthSamples, func(n int) float64 {
			return 2 * (1 + 0.02*float64(min(max(n-30, 0), 10)))
		})
		for _, c := range DetectChanges(series, DetectOptions{}) {
			if c.Index >= 28 && c.Index <= 42 && c.Effect > 0 {
				rampFound++
				break
			}
		}
	}
	t.Logf("slow drift 0.1%%/night: flagged in %d of %d series; ramp 2%%/night × 10: found inside the ramp in %d of %d",
		slowFlagged, synthSeries, rampFound, synthSeries)
	if rampFound < synthSeries*9/10 {
		t.Errorf("ramp found in only %d of %d series", rampFound, synthSeries)
	}
	if slowFlagged > synthSeries/5 {
		t.Errorf("slow drift flagged in %d of %d series", slowFlagged, synthSeries)
	}
}

// TestDetectTwoRuns: a new history with two nights of five samples, the
// second 30% slower (make nightly's own test), shows the change at night 2.
func TestDetectTwoRuns(t *testing.T) {
	runs := [][]float64{{2.0, 2.1, 1.9, 2.05, 2.2}, {2.9, 3.0, 2.8, 3.1, 2.95}}
	cps := DetectChanges(runs, DetectOptions{})
	if len(cps) != 1 || cps[0].Index != 1 || cps[0].Effect < 0.3 || cps[0].Confidence < 0.99 {
		t.Fatalf("change points %+v, want one at index 1, +40%%, confidence ≥ 0.99", cps)
	}
	// Exact series (sizes): every change counts.
	cps = DetectChanges([][]float64{{100}, {100}, {101}, {101}}, DetectOptions{Exact: true})
	if len(cps) != 1 || cps[0].Index != 2 {
		t.Fatalf("exact: %+v", cps)
	}
}

// TestCheckNamesTheRun: a regression that started two nights ago is
// flagged on the newest night, naming the night it started.
func TestCheckNamesTheRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	series := synth(rng, 12, 10, func(n int) float64 {
		if n >= 10 {
			return 2.4
		}
		return 2
	})
	sr := &Series{Config: ConfigInfo{ID: "a/x"}, Metric: "boot.all_ready", Unit: "s", Lower: true}
	for i, s := range series {
		sr.Points = append(sr.Points, Point{Run: &Run{ID: int64(i + 1)}, Samples: s})
	}
	res := CheckSeries([]*Series{sr}, CheckOptions{MaxRegression: 0.05})
	if len(res.Findings) != 1 {
		t.Fatalf("findings %+v, want one", res.Findings)
	}
	f := res.Findings[0]
	if f.ChangedAt.ID != 11 || f.Newest.ID != 12 || f.Effect < 0.1 {
		t.Fatalf("finding %+v: want changed at run 11, newest 12, effect ≈ 20%%", f)
	}
	// The same series, improved instead: nothing to report.
	for i := range sr.Points[10:] {
		for j := range sr.Points[10+i].Samples {
			sr.Points[10+i].Samples[j] *= 0.6
		}
	}
	if res := CheckSeries([]*Series{sr}, CheckOptions{MaxRegression: 0.05}); len(res.Findings) != 0 {
		t.Fatalf("an improvement reported: %+v", res.Findings)
	}
}

// TestCheckRates: `history check` as a nightly gate, night after night over
// the synthetic series: how often it fails on a flat series (a false alarm,
// mostly the slow nights the series has by construction), and how often it
// catches a +10% step on the step's first night.
func TestCheckRates(t *testing.T) {
	asSeries := func(runs [][]float64) *Series {
		sr := &Series{Config: ConfigInfo{ID: "a/x"}, Metric: "boot.all_ready", Unit: "s", Lower: true}
		for i, s := range runs {
			sr.Points = append(sr.Points, Point{Run: &Run{ID: int64(i + 1)}, Samples: s})
		}
		return sr
	}
	rng := rand.New(rand.NewPCG(9, 10))
	nights, alarms := 0, 0
	for range synthSeries {
		series := asSeries(synth(rng, synthRuns, synthSamples, func(int) float64 { return 2 }))
		full := series.Points
		for n := DefaultBaseline + 1; n <= len(full); n++ {
			series.Points = full[:n]
			nights++
			if len(CheckSeries([]*Series{series}, CheckOptions{MaxRegression: 0.05}).Findings) > 0 {
				alarms++
			}
		}
	}
	caught := 0
	for range synthSeries {
		runs := synth(rng, synthStep+1, synthSamples, func(n int) float64 {
			if n >= synthStep {
				return 2.2
			}
			return 2
		})
		if len(CheckSeries([]*Series{asSeries(runs)}, CheckOptions{MaxRegression: 0.05}).Findings) > 0 {
			caught++
		}
	}
	t.Logf("check --max-regression 5%%: failed %d of %d flat nights (%.2f%%; one night in 40 is 25%% slow by construction); caught a +10%% step on its first night in %d of %d series",
		alarms, nights, 100*float64(alarms)/float64(nights), caught, synthSeries)
	if float64(alarms) > 0.05*float64(nights) {
		t.Errorf("false alarms on %d of %d nights", alarms, nights)
	}
	if caught < synthSeries*9/10 {
		t.Errorf("a +10%% step caught on its first night in only %d of %d series", caught, synthSeries)
	}
}
