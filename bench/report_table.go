package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// This file owns the "table" report: statistics per configuration, for
// people, and how each configuration compares with its floor.

// writeTable writes the header (versions, host, runs), then per
// configuration a table of its metrics' statistics and its failures, then
// the ratios to the floor.
func writeTable(w io.Writer, r *Results) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	writeTableHeader(tw, r)
	for i := range r.Configs {
		writeConfigTable(tw, &r.Configs[i])
	}
	writeFloorRatios(tw, r)
	return tw.Flush()
}

func writeTableHeader(w io.Writer, r *Results) {
	fmt.Fprintf(w, "kitrun %s", orUnknown(r.Kitrun))
	if r.QEMU != "" {
		fmt.Fprintf(w, ", QEMU %s", r.QEMU)
	}
	fmt.Fprintln(w)
	h := r.Host
	fmt.Fprintf(w, "host %s: %s, %d CPUs, %s RAM; %s, kernel %s\n",
		orUnknown(h.Hostname), orUnknown(h.CPU), h.CPUs, formatValue(float64(h.MemBytes), UnitBytes), orUnknown(h.OS), orUnknown(h.Kernel))
	if !r.Started.IsZero() {
		fmt.Fprintf(w, "started %s, %s\n", r.Started.Format("2006-01-02 15:04:05 MST"), r.Finished.Sub(r.Started).Round(1e9))
	}
	fmt.Fprintf(w, "%s per configuration, after %s\n", plural(r.Runs, "run"), plural(r.Warmup, "warm-up run"))
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: the samples finished before are reported")
	}
}

// plural returns "1 run", "2 runs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func writeConfigTable(w io.Writer, c *Config) {
	fmt.Fprintf(w, "\n%s: %s\n", oneLine(c.ID), oneLine(configSummary(c)))
	stats := configStats(c)
	names := metricNames(&Config{Stats: stats})
	width := len("metric")
	for _, name := range names {
		width = max(width, utf8.RuneCountInString(name)) // as %-*s counts
	}
	if len(names) > 0 {
		// AlignRight suits the numbers; padding the names to one width
		// keeps that column left-aligned.
		fmt.Fprintf(w, "%-*s\tmedian\tmean ± stddev\tCV\tmin\tmax\tp95\tn\t\n", width, "metric")
	}
	for _, name := range names {
		st := stats[name]
		fmt.Fprintf(w, "%-*s\t%s\t%s\t%.1f%%\t%s\t%s\t%s\t%d\t\n", width, name,
			formatValue(st.Median, st.Unit), formatSpread(st.Mean, st.Stddev, st.Unit),
			st.CV*100, formatValue(st.Min, st.Unit), formatValue(st.Max, st.Unit),
			formatValue(st.P95, st.Unit), st.N)
	}
	failed := 0
	for _, s := range c.Samples {
		if s.Error != "" {
			failed++
		}
	}
	fmt.Fprintf(w, "failed: %d of %s\n", failed, plural(len(c.Samples), "run"))
	for _, s := range c.Samples {
		if s.Error != "" {
			fmt.Fprintf(w, "  run %d: %s\n", s.Run, oneLine(s.Error))
		}
	}
	for _, name := range names {
		if m := stats[name].Modes; len(m) == 2 {
			u := stats[name].Unit
			fmt.Fprintf(w, "two modes in %s: %d runs at %s–%s, %d at %s–%s; its median depends on how the runs fell\n", name,
				m[0].N, formatValue(m[0].Min, u), formatValue(m[0].Max, u), m[1].N, formatValue(m[1].Min, u), formatValue(m[1].Max, u))
		}
	}
}

// configSummary describes c in one line: what ran, where, and how.
func configSummary(c *Config) string {
	var parts []string
	if c.Floor {
		parts = append(parts, "floor")
	} else {
		parts = append(parts, "spec "+orUnknown(c.Name))
	}
	parts = append(parts, strings.Join(nonEmpty(c.Arch, c.Machine), " "))
	if c.MemMiB > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB", c.MemMiB))
	}
	accel := "accel " + orUnknown(c.AccelUsed)
	if c.Accel != "" && c.Accel != c.AccelUsed {
		accel += " (asked " + c.Accel + ")"
	}
	parts = append(parts, accel)
	if c.Kernel != "" {
		parts = append(parts, "kernel "+c.Kernel)
	}
	return strings.Join(nonEmpty(parts...), ", ")
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

// writeFloorRatios writes, for each configuration with a floor, the paired
// estimate of all-ready over the floor's power-off (ratio.all_ready_floor:
// the geometric mean of each round's ratio) with its 95 % confidence
// interval, and the ratio of the two medians beside it.
func writeFloorRatios(w io.Writer, r *Results) {
	type ratio struct {
		config, floor *Config
		paired        Stats
		ready, off    float64
	}
	var ratios []ratio
	width := 0
	for i := range r.Configs {
		c := &r.Configs[i]
		if c.Floor {
			continue
		}
		floor := floorFor(r, c)
		if floor == nil {
			continue
		}
		ready, ok1 := configStats(c)["boot.all_ready"]
		off, ok2 := configStats(floor)["boot.power_off"]
		paired, ok3 := c.Stats["ratio.all_ready_floor"]
		if !ok1 || !ok2 || !ok3 || ready.N == 0 || off.N == 0 || off.Median == 0 {
			continue
		}
		ratios = append(ratios, ratio{c, floor, paired, ready.Median, off.Median})
		width = max(width, utf8.RuneCountInString(oneLine(c.ID)))
	}
	if len(ratios) == 0 {
		return
	}
	fmt.Fprintf(w, "\nall-ready / floor power-off, paired by round (geometric mean, 95%% CI):\n")
	for _, x := range ratios {
		ci := "no interval: one pair"
		if x.paired.CIHigh > 0 {
			ci = fmt.Sprintf("[%.3f, %.3f] ±%.1f%%", x.paired.CILow, x.paired.CIHigh, 100*(x.paired.CIHigh-x.paired.CILow)/2/x.paired.Estimate)
		}
		fmt.Fprintf(w, "%-*s\t%.3fx\t  %s, %d pairs; medians %s / %s = %.2fx (floor %s)\n", width, oneLine(x.config.ID),
			x.paired.Estimate, ci, x.paired.N, formatValue(x.ready, UnitSeconds), formatValue(x.off, UnitSeconds),
			x.ready/x.off, oneLine(x.floor.ID))
	}
}

// floorFor returns the floor configuration to compare c with: one on the
// same arch, machine and accelerator, preferring the same kernel and then
// the same memory size; nil if there is none.
func floorFor(r *Results, c *Config) *Config {
	var best *Config
	bestScore := -1
	for i := range r.Configs {
		f := &r.Configs[i]
		if !f.Floor || f.Arch != c.Arch || f.Machine != c.Machine || f.Accel != c.Accel {
			continue
		}
		score := 0
		if f.Kernel == c.Kernel {
			score += 2
		}
		if f.MemMiB == c.MemMiB {
			score++
		}
		if score > bestScore {
			best, bestScore = f, score
		}
	}
	return best
}
