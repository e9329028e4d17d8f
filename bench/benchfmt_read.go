package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// This file owns reading the Go benchmark format, with x/perf's reader;
// benchfmt.go describes the format.

// readBenchfmt reads the Go benchmark format into Results; see the top of
// this file. file names the input in errors.
func readBenchfmt(data []byte, file string) (*Results, error) {
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 && len(bytes.TrimSpace(data[i+1:])) > 0 {
		return nil, fmt.Errorf("%s:%d: incomplete last line, with no newline at its end: is the file truncated?", file, bytes.Count(data, []byte("\n"))+1)
	}
	metaResults, metaConfigs, metaFailed, err := readBenchfmtMeta(data, file)
	if err != nil {
		return nil, err
	}
	r := &Results{Schema: SchemaVersion}
	if metaResults != nil {
		r = metaResults
	}

	// Configurations by benchmark name, in order of first appearance.
	type entry struct {
		config *Config
		line   int
		runs   []int // run numbers still to assign, from the meta line
	}
	entries := make(map[string]*entry)
	for bench, m := range metaConfigs {
		c := m.meta.Config
		entries[bench] = &entry{config: &c, line: m.line, runs: m.meta.Runs}
	}
	for _, f := range metaFailed {
		e := entries[f.meta.Bench]
		if e == nil {
			return nil, fmt.Errorf("%s:%d: kitrun-failed line for benchmark %q, which has no kitrun-config line", file, f.line, f.meta.Bench)
		}
		e.config.Samples = append(e.config.Samples, f.meta.Sample)
	}

	rd := benchfmt.NewReader(bytes.NewReader(data), file)
	first := true
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec // "file:line: message"
		case *benchfmt.Result:
			_, line := rec.Pos()
			if first && metaResults == nil {
				r.Kitrun = rec.GetConfig("kitrun-version")
				r.QEMU = rec.GetConfig("qemu")
				r.Host.CPU = rec.GetConfig("cpu")
				r.Host.GoArch = rec.GetConfig("goarch")
			}
			first = false
			bench := rec.Name.String()
			e := entries[bench]
			if e == nil {
				e = &entry{config: configOfBenchName(rec.Name), line: line}
				entries[bench] = e
			}
			s := Sample{Metrics: make(map[string]float64, len(rec.Values))}
			for _, v := range rec.Values {
				// benchfmt rescales some units ("ns" to "sec"); take the
				// value as written.
				unit, value := v.Unit, v.Value
				if v.OrigUnit != "" {
					unit, value = v.OrigUnit, v.OrigValue
				}
				name, _ := metricOfBenchfmtUnit(unit)
				if _, dup := s.Metrics[name]; dup {
					return nil, fmt.Errorf("%s:%d: metric %s appears twice", file, line, name)
				}
				s.Metrics[name] = value
			}
			if len(e.runs) > 0 {
				s.Run, e.runs = e.runs[0], e.runs[1:]
			} else {
				s.Run = nextRun(e.config)
			}
			e.config.Samples = append(e.config.Samples, s)
		}
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results: neither kitrun JSON results nor the Go benchmark format", file)
	}

	order := make([]*entry, 0, len(entries))
	for _, e := range entries {
		order = append(order, e)
	}
	slices.SortFunc(order, func(a, b *entry) int { return a.line - b.line })
	r.Configs = make([]Config, 0, len(order))
	for _, e := range order {
		c := e.config
		// Failed samples from the meta line go back in run order.
		slices.SortStableFunc(c.Samples, func(a, b Sample) int { return a.Run - b.Run })
		c.Summarize(nil)
		if metaResults == nil {
			r.Runs = max(r.Runs, len(c.Samples))
		}
		r.Configs = append(r.Configs, *c)
	}
	return r, nil
}

func nextRun(c *Config) int {
	run := 0
	for _, s := range c.Samples {
		run = max(run, s.Run)
	}
	return run + 1
}

// configOfBenchName makes a Config from a benchmark name, for results with
// no "# kitrun-config:" line. Its ID is that of the kitrun convention,
// spec/arch/machine/mem/accel, for our own names, else the benchmark name.
func configOfBenchName(name benchfmt.Name) *Config {
	base, parts := name.Parts()
	c := &Config{}
	ours := string(base) == benchfmtBase && len(parts) > 0
	for _, p := range parts {
		key, value, ok := strings.Cut(strings.TrimPrefix(string(p), "/"), "=")
		if !ok || !strings.HasPrefix(string(p), "/") {
			ours = false
			continue
		}
		value = benchfmtUnescape(value)
		switch key {
		case "spec":
			c.Name = value
		case "machine":
			c.Machine = value
		case "accel":
			c.Accel, c.AccelUsed = value, value
		case "arch":
			c.Arch = value
		case "mem":
			mib, err := strconv.Atoi(strings.TrimSuffix(value, "M"))
			if err != nil {
				ours = false
			}
			c.MemMiB = mib
		default:
			ours = false
		}
	}
	c.Floor = c.Name == "floor"
	if !c.Floor {
		c.Spec = c.Name
	}
	if ours {
		mem := ""
		if c.MemMiB > 0 {
			mem = strconv.Itoa(c.MemMiB) + "M"
		}
		c.ID = strings.Join(nonEmpty(c.Name, c.Arch, c.Machine, mem, c.Accel), "/")
	} else {
		c.ID = benchfmtUnescape(name.String())
	}
	return c
}

// benchfmtMeta is a "# kitrun-" line read, and where.
type benchfmtMeta[T any] struct {
	meta T
	line int
}

// readBenchfmtMeta reads the "# kitrun-" lines: the results, the configs by
// benchmark name, and the failed samples.
func readBenchfmtMeta(data []byte, file string) (*Results, map[string]benchfmtMeta[benchfmtConfigMeta], []benchfmtMeta[benchfmtFailedMeta], error) {
	var results *Results
	configs := make(map[string]benchfmtMeta[benchfmtConfigMeta])
	var failed []benchfmtMeta[benchfmtFailedMeta]
	for n, line := range bytes.Split(data, []byte("\n")) {
		n++ // lines count from 1
		bad := func(kind string, err error) error {
			return fmt.Errorf("%s:%d: bad %s line: %v", file, n, kind, err)
		}
		if rest, ok := bytes.CutPrefix(line, []byte(benchfmtMetaResults)); ok {
			var r Results
			if err := json.Unmarshal(rest, &r); err != nil {
				return nil, nil, nil, bad("kitrun-results", err)
			}
			if err := checkSchema(r.Schema); err != nil {
				return nil, nil, nil, fmt.Errorf("%s:%d: %v", file, n, err)
			}
			results = &r
		} else if rest, ok := bytes.CutPrefix(line, []byte(benchfmtMetaConfig)); ok {
			var m benchfmtConfigMeta
			if err := json.Unmarshal(rest, &m); err != nil {
				return nil, nil, nil, bad("kitrun-config", err)
			}
			if _, dup := configs[m.Bench]; dup || m.Bench == "" {
				return nil, nil, nil, bad("kitrun-config", fmt.Errorf("benchmark %q repeated or empty", m.Bench))
			}
			configs[m.Bench] = benchfmtMeta[benchfmtConfigMeta]{m, n}
		} else if rest, ok := bytes.CutPrefix(line, []byte(benchfmtMetaFailed)); ok {
			var m benchfmtFailedMeta
			if err := json.Unmarshal(rest, &m); err != nil {
				return nil, nil, nil, bad("kitrun-failed", err)
			}
			if m.Error == "" {
				return nil, nil, nil, bad("kitrun-failed", fmt.Errorf("no error"))
			}
			failed = append(failed, benchfmtMeta[benchfmtFailedMeta]{m, n})
		}
	}
	return results, configs, failed, nil
}
