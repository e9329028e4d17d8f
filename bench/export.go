package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
)

// This file owns the machine-readable exports: a comparison as JSON or CSV
// (`bench compare --format`), and results in github-action-benchmark's
// format.

// FormatGitHubActionBenchmark is github-action-benchmark's "custom" JSON
// (tool: customSmallerIsBetter): [{name, unit, value, range, extra}].
const FormatGitHubActionBenchmark = "github-action-benchmark"

// CompareFormats are the formats a Comparison writes.
var CompareFormats = []string{FormatTable, FormatJSON, FormatCSV}

// WriteFormat writes the comparison in format (one of CompareFormats).
func (c *Comparison) WriteFormat(w io.Writer, format string) error {
	switch format {
	case FormatTable:
		return c.Write(w)
	case FormatJSON:
		return c.writeJSON(w)
	case FormatCSV:
		return c.writeCSV(w)
	}
	return fmt.Errorf("unknown comparison format %q (want table, json or csv)", format)
}

// jsonFloat is a float that is null in JSON when it is NaN or infinite
// (JSON has neither).
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

type compareRowJSON struct {
	Config      string    `json:"config"`
	Metric      string    `json:"metric"`
	Unit        string    `json:"unit"`
	Old         Stats     `json:"old"`
	New         Stats     `json:"new"`
	Delta       jsonFloat `json:"delta"`
	P           jsonFloat `json:"p"`
	Significant bool      `json:"significant"`
	Regression  bool      `json:"regression"`
	Note        string    `json:"note,omitempty"`
}

func (c *Comparison) writeJSON(w io.Writer) error {
	out := struct {
		Alpha         float64          `json:"alpha"`
		MaxRegression float64          `json:"max_regression"`
		Regressions   int              `json:"regressions"`
		Rows          []compareRowJSON `json:"rows"`
		OnlyOld       []string         `json:"only_old"`
		OnlyNew       []string         `json:"only_new"`
	}{Alpha: c.Alpha, MaxRegression: c.MaxRegression, Regressions: len(c.Regressions()),
		Rows: []compareRowJSON{}, OnlyOld: nonNil(c.OnlyOld), OnlyNew: nonNil(c.OnlyNew)}
	for _, r := range c.Rows {
		out.Rows = append(out.Rows, compareRowJSON{Config: r.Config, Metric: r.Metric, Unit: r.Unit,
			Old: r.Old, New: r.New, Delta: jsonFloat(r.Delta), P: jsonFloat(r.P),
			Significant: r.Significant, Regression: r.Regression, Note: r.Note})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *Comparison) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"config", "metric", "unit", "old_median", "new_median", "old_n", "new_n", "delta", "p", "significant", "regression", "note"})
	num := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, r := range c.Rows {
		oldMed, newMed := "", ""
		if r.Old.N > 0 {
			oldMed = num(r.Old.Median)
		}
		if r.New.N > 0 {
			newMed = num(r.New.Median)
		}
		cw.Write([]string{r.Config, r.Metric, r.Unit, oldMed, newMed, strconv.Itoa(r.Old.N), strconv.Itoa(r.New.N),
			num(r.Delta), num(r.P), strconv.FormatBool(r.Significant), strconv.FormatBool(r.Regression), r.Note})
	}
	cw.Flush()
	return cw.Error()
}

// gabEntry is one benchmark of github-action-benchmark's custom format.
type gabEntry struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	Range string  `json:"range,omitempty"`
	Extra string  `json:"extra,omitempty"`
}

// writeGitHubActionBenchmark writes, for every configuration and every
// metric where lower is better, the median as value, "± stddev" as range
// and the sample count, CV and p95 as extra. Metrics where higher is
// better (available memory) are left out: customSmallerIsBetter would
// chart them upside down.
func writeGitHubActionBenchmark(w io.Writer, r *Results) error {
	entries := []gabEntry{}
	for i := range r.Configs {
		c := &r.Configs[i]
		stats := configStats(c)
		for _, name := range metricNames(c) {
			m, known := LookupMetric(name)
			st, ok := stats[name]
			if !known || !m.Lower || !ok || st.N == 0 {
				continue
			}
			unit := st.Unit
			if unit == "" {
				unit = m.Unit
			}
			e := gabEntry{Name: c.ID + " " + name, Unit: unit, Value: st.Median,
				Extra: fmt.Sprintf("n=%d cv=%.2f%% p95=%g min=%g max=%g", st.N, st.CV*100, st.P95, st.Min, st.Max)}
			if !m.Exact {
				e.Range = "± " + strconv.FormatFloat(st.Stddev, 'g', 4, 64)
			}
			entries = append(entries, e)
		}
	}
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
