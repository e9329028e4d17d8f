package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kitrun/kitrun/boot/atomicfile"
)

// This file owns writing results: the report formats, and writing a report
// file so that a reader never sees half of it.

// Report formats, for Write.
const (
	FormatTable    = "table"    // for people: per-configuration statistics
	FormatJSON     = "json"     // the Results, as ReadResults reads back
	FormatBenchfmt = "benchfmt" // Go benchmark format, for benchstat (see writeBenchfmt)
	FormatCSV      = "csv"      // one row per sample and metric, for spreadsheets
)

// Formats lists the report formats Write knows.
var Formats = []string{FormatTable, FormatJSON, FormatBenchfmt, FormatCSV, FormatGitHubActionBenchmark}

// ReportOptions adjusts a report.
type ReportOptions struct {
	// Metrics selects the metrics to report (see ValidateMetricNames for
	// the syntax); empty reports all. Failed samples are always reported.
	Metrics []string
}

// Write writes r to w in format (one of Formats).
func Write(w io.Writer, r *Results, format string, opts ReportOptions) error {
	var write func(io.Writer, *Results) error
	switch format {
	case FormatTable:
		write = writeTable
	case FormatJSON:
		write = writeJSON
	case FormatBenchfmt:
		write = writeBenchfmt
	case FormatCSV:
		write = writeCSV
	case FormatGitHubActionBenchmark:
		write = writeGitHubActionBenchmark
	default:
		return fmt.Errorf("unknown report format %q (want %s)", format, strings.Join(Formats, ", "))
	}
	if err := ValidateMetricNames(opts.Metrics); err != nil {
		return err
	}
	return write(w, selectResults(r, opts.Metrics))
}

// WriteFile writes r to path in format, atomically and durably (see
// atomicfile): if anything fails, path is left as it was.
func WriteFile(path string, r *Results, format string, opts ReportOptions) error {
	return atomicfile.WriteFrom(path, 0o644, func(w io.Writer) error {
		return Write(w, r, format, opts)
	})
}

// selectResults returns r with only the metrics sels select, sharing what
// it does not change; r itself if sels is empty.
func selectResults(r *Results, sels []string) *Results {
	if len(sels) == 0 {
		return r
	}
	out := *r
	out.Configs = make([]Config, len(r.Configs))
	for i, c := range r.Configs {
		c.Samples = make([]Sample, len(r.Configs[i].Samples))
		for j, s := range r.Configs[i].Samples {
			if s.Metrics != nil {
				m := make(map[string]float64)
				for name, v := range s.Metrics {
					if selectMetric(sels, name) {
						m[name] = v
					}
				}
				s.Metrics = m
			}
			c.Samples[j] = s
		}
		if c.Stats != nil {
			c.Stats = make(map[string]Stats)
			for name, st := range r.Configs[i].Stats {
				if selectMetric(sels, name) {
					c.Stats[name] = st
				}
			}
		}
		out.Configs[i] = c
	}
	return &out
}

// configStats returns c's Stats, computing them if c has none yet.
func configStats(c *Config) map[string]Stats {
	if c.Stats != nil {
		return c.Stats
	}
	cc := *c
	cc.Summarize(nil)
	return cc.Stats
}

// metricNames returns the metrics c has, in report order.
func metricNames(c *Config) []string {
	seen := make(map[string]bool)
	var names []string
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for name := range c.Stats {
		add(name)
	}
	for _, s := range c.Samples {
		for name := range s.Metrics {
			add(name)
		}
	}
	sortMetricNames(names)
	return names
}

// unitOf returns the unit of metric name in c: the one its Stats record,
// else the registry's.
func unitOf(c *Config, name string) string {
	if st, ok := c.Stats[name]; ok && st.Unit != "" {
		return st.Unit
	}
	return metricUnit(nil, name)
}

func writeJSON(w io.Writer, r *Results) error {
	out := *r
	out.Schema = SchemaVersion // the model in memory is always this version
	b, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeCSV(w io.Writer, r *Results) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"config", "run", "metric", "value", "unit", "error"})
	for i := range r.Configs {
		c := &r.Configs[i]
		names := metricNames(c)
		for _, s := range c.Samples {
			run := strconv.Itoa(s.Run)
			if s.Error != "" {
				cw.Write([]string{c.ID, run, "", "", "", s.Error})
				continue
			}
			for _, name := range names {
				if v, ok := s.Metrics[name]; ok {
					cw.Write([]string{c.ID, run, name, strconv.FormatFloat(v, 'f', -1, 64), unitOf(c, name), ""})
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
