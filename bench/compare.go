package bench

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// This file owns comparing two results: which metrics changed, whether the
// change is more than noise, and whether it is a regression.

// DefaultAlpha is the significance level when CompareOptions.Alpha is 0.
const DefaultAlpha = 0.05

// minSamples is the fewest samples per side for a significance test; with
// fewer, a change is never significant. (At alpha 0.05, 3 against 3 cannot
// be significant anyway: the smallest exact p-value is 0.1.)
const minSamples = 3

// CompareOptions adjusts Compare.
type CompareOptions struct {
	// Alpha is the significance level: a change is significant when the
	// Mann–Whitney p-value is below it. 0 means DefaultAlpha.
	Alpha float64
	// MaxRegression is the largest worsening, as a fraction of the old
	// median (0.05 for 5%), that is not a regression. 0 makes any
	// significant worsening a regression.
	MaxRegression float64
	// Metrics selects the metrics to compare, as ReportOptions.Metrics.
	Metrics []string
}

// Comparison is the comparison of two results.
type Comparison struct {
	Alpha         float64
	MaxRegression float64
	// Rows has a row per metric of each configuration both sides have, in
	// the old results' order.
	Rows []Row
	// OnlyOld and OnlyNew are the IDs of configurations in one side only.
	OnlyOld, OnlyNew []string
	// Warnings say when a configuration's two sides ran on different
	// nodes (or either side on several): its differences may be the
	// hosts'.
	Warnings []string
}

// Row compares one metric of one configuration.
type Row struct {
	Config string // configuration ID
	Metric string
	Unit   string
	// Old and New summarise the successful samples; N = 0 when the metric
	// is missing on that side.
	Old, New Stats
	// Delta is the change of the median, (new-old)/|old|; ±Inf when old
	// is 0 and new is not.
	Delta float64
	// P is the two-sided Mann–Whitney U test p-value; NaN when there was
	// no test (an exact metric, a missing side, or too few samples).
	P float64
	// Significant says the change is not noise: P < Alpha, or, for an exact
	// metric (a size), any change at all.
	Significant bool
	// Regression says the change is significant, in the worse direction,
	// and larger than MaxRegression.
	Regression bool
	// Note says why there is no test, or more about the row.
	Note string
}

// Compare compares new results against old ones, configuration by
// configuration (matched by ID), metric by metric. Configurations in only
// one side are listed in OnlyOld and OnlyNew; it is an error if no
// configuration is in both.
func Compare(old, new *Results, opts CompareOptions) (*Comparison, error) {
	if opts.Alpha == 0 {
		opts.Alpha = DefaultAlpha
	}
	if opts.Alpha < 0 || opts.Alpha > 1 {
		return nil, fmt.Errorf("significance level %v out of range [0, 1]", opts.Alpha)
	}
	if opts.MaxRegression < 0 || math.IsNaN(opts.MaxRegression) {
		return nil, fmt.Errorf("maximum regression %v is negative", opts.MaxRegression)
	}
	if err := ValidateMetricNames(opts.Metrics); err != nil {
		return nil, err
	}
	cmp := &Comparison{Alpha: opts.Alpha, MaxRegression: opts.MaxRegression}
	newByID := make(map[string]*Config)
	for i := range new.Configs {
		newByID[new.Configs[i].ID] = &new.Configs[i]
	}
	matched := make(map[string]bool)
	for i := range old.Configs {
		o := &old.Configs[i]
		n, ok := newByID[o.ID]
		if !ok {
			cmp.OnlyOld = append(cmp.OnlyOld, o.ID)
			continue
		}
		matched[o.ID] = true
		cmp.Rows = append(cmp.Rows, compareConfig(o, n, opts)...)
		if w := nodeWarning(old, new, o, n); w != "" {
			cmp.Warnings = append(cmp.Warnings, w)
		}
	}
	for _, c := range new.Configs {
		if !matched[c.ID] {
			cmp.OnlyNew = append(cmp.OnlyNew, c.ID)
		}
	}
	if len(matched) == 0 {
		return nil, fmt.Errorf("results of different configurations: old has %s, new has %s",
			configIDs(old), configIDs(new))
	}
	return cmp, nil
}

// nodeWarning says when a configuration was measured on different hosts
// on the two sides: by its samples' nodes, else the results' hostnames.
func nodeWarning(old, new *Results, o, n *Config) string {
	on, nn := o.Nodes(), n.Nodes()
	if len(on) == 0 && old.Host.Hostname != "" {
		on = []string{old.Host.Hostname}
	}
	if len(nn) == 0 && new.Host.Hostname != "" {
		nn = []string{new.Host.Hostname}
	}
	if len(on) == 0 || len(nn) == 0 || (len(on) == 1 && len(nn) == 1 && on[0] == nn[0]) {
		return ""
	}
	return fmt.Sprintf("warning: %s ran on %s (old) and %s (new): a difference may be the hosts'",
		o.ID, strings.Join(on, ", "), strings.Join(nn, ", "))
}

func configIDs(r *Results) string {
	ids := make([]string, len(r.Configs))
	for i, c := range r.Configs {
		ids[i] = c.ID
	}
	return "[" + strings.Join(ids, " ") + "]"
}

// compareConfig compares every metric either side of one configuration has.
func compareConfig(o, n *Config, opts CompareOptions) []Row {
	names := metricNames(&Config{Samples: append(append([]Sample(nil), o.Samples...), n.Samples...)})
	var rows []Row
	for _, name := range names {
		if !selectMetric(opts.Metrics, name) {
			continue
		}
		unit := unitOf(o, name)
		if unit == "" {
			unit = unitOf(n, name)
		}
		ox, nx := successValues(o, name), successValues(n, name)
		row := Row{Config: o.ID, Metric: name, Unit: unit,
			Old: Summarize(ox, unit), New: Summarize(nx, unit), P: math.NaN()}
		judge(&row, ox, nx, opts)
		rows = append(rows, row)
	}
	return rows
}

// judge fills in a row's delta, test and verdicts.
func judge(row *Row, ox, nx []float64, opts CompareOptions) {
	switch {
	case row.Old.N == 0:
		row.Note = "only in new"
		return
	case row.New.N == 0:
		row.Note = "only in old"
		return
	}
	row.Delta = relativeChange(row.Old.Median, row.New.Median)
	m, known := LookupMetric(row.Metric)
	switch {
	case known && m.Exact:
		// Sizes do not vary between runs, so there is no noise to test
		// against: any difference is real.
		row.Significant = row.Old.Median != row.New.Median
		row.Note = "exact"
	case row.Old.N < minSamples || row.New.N < minSamples:
		row.Note = fmt.Sprintf("too few samples to test (need %d)", minSamples)
	default:
		row.P = mannWhitney(ox, nx).P
		row.Significant = row.P < opts.Alpha
	}
	if !known {
		// Without a better direction there is no worse one.
		if row.Note == "" {
			row.Note = "unknown metric: no regression check"
		}
		return
	}
	worse := row.Delta
	if !m.Lower {
		worse = -worse
	}
	row.Regression = row.Significant && worse > opts.MaxRegression
}

// relativeChange returns (new-old)/|old|: 0 when both are 0, ±Inf when only
// old is.
func relativeChange(old, new float64) float64 {
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

// Regressions returns the rows that are regressions.
func (c *Comparison) Regressions() []Row {
	var rows []Row
	for _, r := range c.Rows {
		if r.Regression {
			rows = append(rows, r)
		}
	}
	return rows
}

// Write writes the comparison as a table: configuration, metric, old and
// new medians, the change of the median ("~" when it is not significant,
// as benchstat), the p-value and sample counts, and a note marking
// regressions. Then the configurations only one side has, and a summary.
func (c *Comparison) Write(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "config\tmetric\told\tnew\tdelta\tp\tnote\n")
	prev := ""
	for _, r := range c.Rows {
		config := r.Config
		if config == prev {
			config = "" // one configuration's rows read as a group
		}
		prev = r.Config
		old, new := compareValues(r)
		delta := "~"
		if r.Significant {
			delta = formatPercent(r.Delta)
		}
		note := r.Note
		if r.Regression {
			note = strings.Join(nonEmpty("REGRESSION", note), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(config), r.Metric, old, new, delta, formatP(r), note)
	}
	tw.Flush()
	if len(c.OnlyOld) > 0 {
		fmt.Fprintf(&buf, "only in old: %s\n", strings.Join(c.OnlyOld, ", "))
	}
	if len(c.OnlyNew) > 0 {
		fmt.Fprintf(&buf, "only in new: %s\n", strings.Join(c.OnlyNew, ", "))
	}
	for _, w := range c.Warnings {
		fmt.Fprintln(&buf, w)
	}
	fmt.Fprintf(&buf, "%s (a significant change at alpha %s, worse by more than %s)\n",
		plural(len(c.Regressions()), "regression"), strconv.FormatFloat(c.Alpha, 'g', -1, 64),
		strings.TrimPrefix(formatPercent(c.MaxRegression), "+"))
	// Rows without a note would end in the padding of the p column.
	var out []byte
	for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
		if trimmed := bytes.TrimRight(line, " \n"); len(trimmed) < len(line) {
			line = append(trimmed, '\n')
		}
		out = append(out, line...)
	}
	_, err := w.Write(out)
	return err
}

// compareValues shows a row's old and new medians, with all their digits
// if rounding would make two different values look the same.
func compareValues(r Row) (old, new string) {
	show := func(st Stats, format func(float64, string) string) string {
		if st.N == 0 {
			return "-"
		}
		return format(st.Median, r.Unit)
	}
	old, new = show(r.Old, formatValue), show(r.New, formatValue)
	if old == new && r.Old.N > 0 && r.New.N > 0 && r.Old.Median != r.New.Median {
		old, new = show(r.Old, formatExact), show(r.New, formatExact)
	}
	return old, new
}

// formatP shows "p=0.001 n=10+10", as benchstat, or the sample counts
// alone when there was no test.
func formatP(r Row) string {
	n := fmt.Sprintf("n=%d+%d", r.Old.N, r.New.N)
	if math.IsNaN(r.P) {
		return n
	}
	return fmt.Sprintf("p=%.3f %s", r.P, n)
}

// ParsePercent parses a threshold: "5%" and "5" are both 5%, 0.05 (a bare
// number is a percentage too, so that "--max-regression 5" cannot mean
// 500%); "0.5%" is 0.005. Negative, NaN and infinite values are errors.
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSpace(strings.TrimSuffix(t, "%"))
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("bad percentage %q: want a number like 5%% or 0.5%%", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("bad percentage %q: negative", s)
	}
	return v / 100, nil
}
