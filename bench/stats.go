package bench

import (
	"math"
	"slices"
)

// This file owns descriptive statistics: the Stats of one metric over the
// samples of a configuration.

// Summarize describes xs, in unit: count, median, mean, sample standard
// deviation (n-1 denominator; 0 when n < 2), coefficient of variation
// (stddev/|mean|; 0 when the mean is 0), min, max and 95th percentile (see
// percentile). Empty xs gives Stats with N = 0 and zeros.
func Summarize(xs []float64, unit string) Stats {
	st := Stats{Unit: unit, N: len(xs)}
	if len(xs) == 0 {
		return st
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	st.Min, st.Max = sorted[0], sorted[len(sorted)-1]
	st.Median = percentile(sorted, 0.5)
	st.P95 = percentile(sorted, 0.95)

	var sum float64
	for _, x := range xs {
		sum += x
	}
	st.Mean = sum / float64(len(xs))
	if len(xs) > 1 {
		// Two passes: summing squared deviations from the mean loses less
		// precision than sum(x²) - n·mean² when the spread is small
		// relative to the values, as it is for repeated boot times.
		var ss float64
		for _, x := range xs {
			d := x - st.Mean
			ss += d * d
		}
		st.Stddev = math.Sqrt(ss / float64(len(xs)-1))
	}
	if st.Mean != 0 {
		st.CV = st.Stddev / math.Abs(st.Mean)
	}
	st.Modes = modes(sorted)
	return st
}

// modes splits sorted samples into two groups when they are clearly two:
// at the widest gap between neighbours that leaves each side at least a
// quarter of the samples (and 3), the gap is wider than 1.25 times either
// side's own range and than 5 % of the median (10 in 1000 samples of one
// normal group, n = 10, CV 5 %, pass for two: TestModes). Boot times on a noisy host do this
// (one group 2.7–3.1 s, the other 3.7–4.1 s), and a comparison of two
// medians then depends on how the runs fell into the groups. Fewer than 8
// samples, or one group: nil.
func modes(sorted []float64) []Mode {
	n := len(sorted)
	if n < 8 {
		return nil
	}
	least := max(3, (n+3)/4)
	split, gap := 0, 0.0
	for k := least; k <= n-least; k++ {
		if g := sorted[k] - sorted[k-1]; g > gap {
			split, gap = k, g
		}
	}
	if split == 0 {
		return nil
	}
	lo, hi := sorted[:split], sorted[split:]
	spread := max(lo[len(lo)-1]-lo[0], hi[len(hi)-1]-hi[0])
	if gap <= 1.25*spread || gap < 0.05*math.Abs(percentile(sorted, 0.5)) {
		return nil
	}
	return []Mode{{Min: lo[0], Max: lo[len(lo)-1], N: len(lo)}, {Min: hi[0], Max: hi[len(hi)-1], N: len(hi)}}
}

// tQuantile975 is Student's t distribution's 0.975 quantile for df degrees
// of freedom: the factor of a two-sided 95 % confidence interval.
func tQuantile975(df int) float64 {
	table := [...]float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df < 1:
		return math.Inf(1)
	case df <= len(table):
		return table[df-1]
	}
	return 1.96 + 2.5/float64(df) // within 0.002 of the exact value above 30
}

// PairedRatio estimates a ratio from the ratios of pairs (each run against
// its neighbouring run of the other configuration): their geometric mean,
// with a 95 % confidence interval from Student's t on the logarithms (the
// logs of ratios of boot times are close to normal; their mean's
// interval, exponentiated, is the ratio's). It returns the Stats of the
// ratios with Estimate, CILow and CIHigh set (no interval below 2 pairs;
// non-positive ratios are left out of the estimate).
func PairedRatio(ratios []float64) Stats {
	st := Summarize(ratios, UnitRatio)
	var logs []float64
	for _, r := range ratios {
		if r > 0 {
			logs = append(logs, math.Log(r))
		}
	}
	if len(logs) == 0 {
		return st
	}
	ls := Summarize(logs, "")
	st.Estimate = math.Exp(ls.Mean)
	if len(logs) > 1 {
		half := tQuantile975(len(logs)-1) * ls.Stddev / math.Sqrt(float64(len(logs)))
		st.CILow, st.CIHigh = math.Exp(ls.Mean-half), math.Exp(ls.Mean+half)
	}
	return st
}

// percentile returns the p-quantile (0 ≤ p ≤ 1) of sorted, which must not
// be empty, interpolating linearly between the closest ranks: with 0-based
// rank h = (n-1)·p, it is x[⌊h⌋] + (h-⌊h⌋)·(x[⌊h⌋+1] - x[⌊h⌋]). This is
// numpy's default method ("linear", Hyndman & Fan type 7) and R's default
// quantile type, so reports can be checked against either; p = 0.5 is the
// usual median.
func percentile(sorted []float64, p float64) float64 {
	h := float64(len(sorted)-1) * p
	lo := int(math.Floor(h))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// Summarize sets c.Failed to the number of failed samples and c.Stats to
// the Stats of each metric over the successful samples (Error == ""); a
// metric missing from some samples is summarised over those that have it.
// The unit of a metric is metrics[name].Unit if metrics has it (nil is
// fine), else the registry's (LookupMetric), else "".
func (c *Config) Summarize(metrics map[string]Metric) {
	values := make(map[string][]float64)
	c.Failed = 0
	for _, s := range c.Samples {
		if s.Error != "" {
			c.Failed++
			continue
		}
		for name, v := range s.Metrics {
			values[name] = append(values[name], v)
		}
	}
	c.Stats = make(map[string]Stats, len(values))
	for name, xs := range values {
		unit := metricUnit(metrics, name)
		if unit == UnitRatio {
			// A ratio metric's samples are the ratios of pairs.
			c.Stats[name] = PairedRatio(xs)
			continue
		}
		c.Stats[name] = Summarize(xs, unit)
	}
}

// metricUnit returns the unit of metric name: from metrics if it has it,
// else from the registry, else "".
func metricUnit(metrics map[string]Metric, name string) string {
	if m, ok := metrics[name]; ok {
		return m.Unit
	}
	if m, ok := LookupMetric(name); ok {
		return m.Unit
	}
	return ""
}

// successValues returns the values of metric name over c's successful
// samples, in run order.
func successValues(c *Config, name string) []float64 {
	var xs []float64
	for _, s := range c.Samples {
		if s.Error != "" {
			continue
		}
		if v, ok := s.Metrics[name]; ok {
			xs = append(xs, v)
		}
	}
	return xs
}
