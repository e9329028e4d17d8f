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
		c.Stats[name] = Summarize(xs, metricUnit(metrics, name))
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
