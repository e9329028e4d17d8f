package bench

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// This file owns the mapping between Results and the Go benchmark format
// (https://go.dev/design/14313-benchmark-format), both ways.
//
// A file looks like this:
//
//	goos: linux
//	goarch: amd64
//	cpu: AMD EPYC 7B13
//	pkg: kitrun/bench
//	kitrun-version: v0.4.0
//	qemu: 8.2.2
//	accel: kvm
//	# kitrun-results: {"schema":1,...}
//
//	Unit boot.all_ready-sec better=lower
//	Unit disk.initrd-B better=lower assume=exact
//
//	# kitrun-config: {"bench":"Boot/spec=minimal/machine=q35/mem=256M/accel=kvm/arch=x86_64","id":...}
//	BenchmarkBoot/spec=minimal/machine=q35/mem=256M/accel=kvm/arch=x86_64 1 0.2134 boot.all_ready-sec 51234816 disk.initrd-B
//
// One line per successful sample. The configuration is in sub-benchmark
// keys, so `benchstat -col /accel` pivots on any of them; the file keys are
// the same for every line, so they don't split benchstat's tables (when
// comparing two files with different kitrun or QEMU versions, pass
// `-ignore kitrun-version,qemu`).
//
// A unit is the metric name, so it is the same name as in JSON and CSV,
// then "-" and the unit: "sec", "B" or "x" (a ratio); benchstat scales
// "-sec" in SI and "-B" in binary prefixes. A metric with no known unit is
// its bare name. Bytes that benchfmt or benchstat would split on (space,
// "/", "*", and "%" itself) are %-escaped, in units and in key values.
//
// A "-ns" or "-MB" in a name is escaped too: benchfmt would read it as
// nanoseconds or megabytes and rescale the value.
//
// The "# kitrun-" lines, which benchfmt readers skip, keep what the
// benchmark lines cannot: config IDs and details, run numbers, failed runs
// (one line each, the error cut to benchfmtMaxError bytes) and the host.
// ReadResults restores them; without them (a file from elsewhere, or
// edited) configurations come from the benchmark names.

const (
	benchfmtBase        = "Boot"
	benchfmtMetaResults = "# kitrun-results: "
	benchfmtMetaConfig  = "# kitrun-config: "
	benchfmtMetaFailed  = "# kitrun-failed: "
)

// benchfmtMaxError bounds the error of a "# kitrun-failed:" line: benchfmt
// readers, benchstat's too, fail on lines over 64 KiB.
const benchfmtMaxError = 4096

// benchfmtKeys are the sub-benchmark keys, in name order.
var benchfmtKeys = []string{"spec", "machine", "mem", "accel", "arch"}

// unitSuffixes maps units to the suffix of their benchfmt units.
var unitSuffixes = map[string]string{UnitSeconds: "sec", UnitBytes: "B", UnitRatio: "x"}

// benchfmtConfigMeta is the "# kitrun-config:" line of a configuration: the
// Config without Samples and Stats.
type benchfmtConfigMeta struct {
	Bench string `json:"bench"` // benchmark name, after "Benchmark"
	Config
	// Runs are the run numbers of the benchmark lines, in order.
	Runs []int `json:"runs"`
	// Always empty: these hide Config's fields, to keep them out of
	// the line. (A shallower field wins in encoding/json.)
	Samples []Sample         `json:"samples,omitempty"`
	Stats   map[string]Stats `json:"stats,omitempty"`
}

// benchfmtFailedMeta is the "# kitrun-failed:" line of a failed sample.
type benchfmtFailedMeta struct {
	Bench string `json:"bench"`
	Sample
}

// benchfmtName returns c's benchmark name, after "Benchmark".
func benchfmtName(c *Config) string {
	values := map[string]string{"spec": c.Name, "machine": c.Machine, "accel": c.Accel, "arch": c.Arch}
	if c.MemMiB > 0 {
		values["mem"] = strconv.Itoa(c.MemMiB) + "M"
	}
	name := benchfmtBase
	for _, k := range benchfmtKeys {
		if v := values[k]; v != "" {
			name += "/" + k + "=" + benchfmtEscape(v)
		}
	}
	// A name ending in "-<digits>" would be read as GOMAXPROCS.
	if i := strings.LastIndexByte(name, '-'); i >= 0 && i < len(name)-1 && strings.Trim(name[i+1:], "0123456789") == "" {
		name = name[:i] + "%2D" + name[i+1:]
	}
	return name
}

// benchfmtUnit returns the benchfmt unit for metric name in unit.
func benchfmtUnit(name, unit string) string {
	u := benchfmtEscape(name)
	// benchfmt reads a "-"-separated "ns" or "MB" as nanoseconds or
	// megabytes, and rescales the value; escaping the "-" keeps it part
	// of the name.
	parts := strings.Split(u, "-")
	u = parts[0]
	for _, p := range parts[1:] {
		if p == "ns" || p == "MB" {
			u += "%2D" + p
		} else {
			u += "-" + p
		}
	}
	if suffix, ok := unitSuffixes[unit]; ok {
		return u + "-" + suffix
	}
	// A bare name must not read back as name-with-unit.
	if _, _, ok := splitBenchfmtUnit(u); ok {
		i := strings.LastIndexByte(u, '-')
		u = u[:i] + "%2D" + u[i+1:]
	}
	return u
}

// splitBenchfmtUnit splits a benchfmt unit into metric name and unit, if it
// ends in one of unitSuffixes.
func splitBenchfmtUnit(u string) (name, unit string, ok bool) {
	i := strings.LastIndexByte(u, '-')
	if i <= 0 {
		return "", "", false
	}
	for unit, suffix := range unitSuffixes {
		if u[i+1:] == suffix {
			return u[:i], unit, true
		}
	}
	return "", "", false
}

// metricOfBenchfmtUnit returns the metric name and unit a benchfmt unit
// stands for: see benchfmtUnit; any other unit (e.g. "sec/op") is a metric
// of its own name, without a unit.
func metricOfBenchfmtUnit(u string) (name, unit string) {
	if n, unit, ok := splitBenchfmtUnit(u); ok {
		return benchfmtUnescape(n), unit
	}
	return benchfmtUnescape(u), ""
}

// benchfmtEscape %-escapes the bytes that end a field (spaces), split a
// name or unit ("/", "*"), or are not ASCII, and "%" itself.
func benchfmtEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '/' || c == '*' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// benchfmtUnescape undoes benchfmtEscape; text that is not valid escaping
// (from another tool) is kept as it is.
func benchfmtUnescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
