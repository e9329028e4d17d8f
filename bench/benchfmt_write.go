package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file owns writing the Go benchmark format; benchfmt.go describes it.

// writeBenchfmt writes r in the Go benchmark format.
func writeBenchfmt(w io.Writer, r *Results) error {
	bw := bufio.NewWriter(w)
	header := []struct{ key, value string }{
		{"goos", "linux"},
		{"goarch", r.Host.GoArch},
		{"cpu", r.Host.CPU},
		{"pkg", "kitrun/bench"},
		{"kitrun-version", r.Kitrun},
		{"qemu", r.QEMU},
		{"accel", accelsUsed(r)},
	}
	for _, h := range header {
		if h.value != "" { // an empty value would delete the key
			fmt.Fprintf(bw, "%s: %s\n", h.key, oneLine(h.value))
		}
	}
	meta := *r
	meta.Schema = SchemaVersion
	meta.Configs = nil
	if err := writeMetaLine(bw, benchfmtMetaResults, &meta); err != nil {
		return err
	}

	// Unit metadata first, so that a reader knows it by the first result.
	var all []string
	for i := range r.Configs {
		for _, name := range metricNames(&r.Configs[i]) {
			if !slices.Contains(all, name) {
				all = append(all, name)
			}
		}
	}
	sortMetricNames(all)
	if len(all) > 0 {
		fmt.Fprintln(bw)
	}
	for _, name := range all {
		m, ok := LookupMetric(name)
		if !ok {
			continue
		}
		better := "higher"
		if m.Lower {
			better = "lower"
		}
		fmt.Fprintf(bw, "Unit %s better=%s", benchfmtUnit(name, m.Unit), better)
		if m.Exact {
			fmt.Fprint(bw, " assume=exact")
		}
		fmt.Fprintln(bw)
	}

	for i := range r.Configs {
		c := &r.Configs[i]
		bench := benchfmtName(c)
		cm := benchfmtConfigMeta{Bench: bench, Config: *c, Runs: []int{}}
		var failed []benchfmtFailedMeta
		var lines bytes.Buffer
		names := metricNames(c)
		for _, s := range c.Samples {
			if s.Error != "" {
				s.Metrics = nil
				s.Error = truncateUTF8(s.Error, benchfmtMaxError)
				failed = append(failed, benchfmtFailedMeta{bench, s})
				continue
			}
			if len(s.Metrics) == 0 {
				continue // a benchmark line needs a value
			}
			fmt.Fprintf(&lines, "Benchmark%s 1", bench)
			for _, name := range names {
				if v, ok := s.Metrics[name]; ok {
					fmt.Fprintf(&lines, " %s %s", strconv.FormatFloat(v, 'f', -1, 64), benchfmtUnit(name, unitOf(c, name)))
				}
			}
			lines.WriteByte('\n')
			cm.Runs = append(cm.Runs, s.Run)
		}
		fmt.Fprintln(bw)
		if err := writeMetaLine(bw, benchfmtMetaConfig, &cm); err != nil {
			return err
		}
		for i := range failed {
			if err := writeMetaLine(bw, benchfmtMetaFailed, &failed[i]); err != nil {
				return err
			}
		}
		bw.Write(lines.Bytes())
	}
	return bw.Flush()
}

func writeMetaLine(w io.Writer, prefix string, v any) error {
	b, err := json.Marshal(v) // one line: Marshal escapes newlines in strings
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", prefix, b)
	return err
}

// accelsUsed returns the accelerators r's configurations ran with,
// comma-separated.
func accelsUsed(r *Results) string {
	var accels []string
	for _, c := range r.Configs {
		a := c.AccelUsed
		if a == "" {
			a = c.Accel
		}
		if a != "" && !slices.Contains(accels, a) {
			accels = append(accels, a)
		}
	}
	slices.Sort(accels)
	return strings.Join(accels, ",")
}

// truncateUTF8 cuts s to at most n bytes, on a character boundary, marking
// the cut with "…".
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
