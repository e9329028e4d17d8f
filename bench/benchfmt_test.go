package bench

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchunit"
)

// TestBenchfmtReadByBenchfmt reads our output with x/perf's own reader,
// as benchstat does: every successful sample is a result, every metric of
// it a value in a legal unit, with the unit metadata of the registry.
func TestBenchfmtReadByBenchfmt(t *testing.T) {
	r := testResults()
	var buf bytes.Buffer
	if err := Write(&buf, r, FormatBenchfmt, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	rd := benchfmt.NewReader(&buf, "out.txt")
	byName := make(map[string][]*benchfmt.Result)
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("benchfmt: %v", rec)
		case *benchfmt.Result:
			for key, want := range map[string]string{"goos": "linux", "goarch": "amd64", "pkg": "kitrun/bench",
				"cpu": r.Host.CPU, "kitrun-version": "v0.4.0", "qemu": "8.2.2", "accel": "tcg"} {
				if got := rec.GetConfig(key); got != want {
					t.Errorf("file key %s = %q, want %q", key, got, want)
				}
			}
			byName[rec.Name.String()] = append(byName[rec.Name.String()], rec.Clone())
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}

	units := rd.Units()
	for _, c := range r.Configs {
		name := benchfmtName(&c)
		base, parts := benchfmt.Name(name).Parts()
		if string(base) != "Boot" || len(parts) != 5 || !strings.HasPrefix(string(parts[0]), "/spec=") {
			t.Errorf("%s: name %q, want Boot and 5 key=value parts", c.ID, name)
		}
		results := byName[name]
		var want []Sample
		for _, s := range c.Samples {
			if s.Error == "" {
				want = append(want, s)
			}
		}
		if len(results) != len(want) {
			t.Fatalf("%s: %d results, want one per successful sample, %d", c.ID, len(results), len(want))
		}
		for i, s := range want {
			res := results[i]
			if len(res.Values) != len(s.Metrics) {
				t.Errorf("%s run %d: %d values, want %d", c.ID, s.Run, len(res.Values), len(s.Metrics))
			}
			for metric, v := range s.Metrics {
				m, _ := LookupMetric(metric)
				unit := benchfmtUnit(metric, m.Unit)
				if strings.ContainsAny(unit, " \t") {
					t.Errorf("unit %q has a space", unit)
				}
				if got, ok := res.Value(unit); !ok || got != v {
					t.Errorf("%s run %d: %s = %v (found %v), want %v", c.ID, s.Run, unit, got, ok, v)
				}
				better := 1
				if m.Lower {
					better = -1
				}
				if got := units.GetBetter(unit); got != better {
					t.Errorf("unit %s: better %d, want %d", unit, got, better)
				}
				if exact := units.Get(unit, "assume") != nil; exact != m.Exact {
					t.Errorf("unit %s: assume=exact %v, want %v", unit, exact, m.Exact)
				}
			}
		}
	}
}

// TestBenchfmtRoundTrip reads back what we write, whole: the "# kitrun-"
// lines keep what the benchmark lines cannot.
func TestBenchfmtRoundTrip(t *testing.T) {
	interrupted := testResults()
	interrupted.Interrupted = true
	allFailed := exampleResults()
	allFailed.Configs[0].Samples = []Sample{{Run: 1, Error: "qemu: exit status 1"}}
	allFailed.Configs[0].Summarize(nil)

	for name, r := range map[string]*Results{"fixture": testResults(), "example": exampleResults(),
		"interrupted": interrupted, "a config with no success": allFailed} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, r, FormatBenchfmt, ReportOptions{}); err != nil {
				t.Fatal(err)
			}
			got, err := parseResults(buf.Bytes(), "out.txt")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip changed the results:\n got %+v\nwant %+v", got, r)
			}
		})
	}
}

// TestBenchfmtWithoutKitrunLines reads a file with only what other tools
// keep: configurations and runs come from the benchmark lines.
func TestBenchfmtWithoutKitrunLines(t *testing.T) {
	r := testResults()
	var buf bytes.Buffer
	if err := Write(&buf, r, FormatBenchfmt, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	var stripped []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, "# kitrun-") {
			stripped = append(stripped, line)
		}
	}
	got, err := parseResults([]byte(strings.Join(stripped, "\n")), "out.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kitrun != "v0.4.0" || got.QEMU != "8.2.2" || got.Host.CPU != r.Host.CPU || got.Host.GoArch != "amd64" {
		t.Errorf("header not read: %+v", got)
	}
	if len(got.Configs) != len(r.Configs) {
		t.Fatalf("%d configs, want %d", len(got.Configs), len(r.Configs))
	}
	for i, c := range r.Configs {
		g := got.Configs[i]
		if g.ID != c.ID || g.Name != c.Name || g.Spec != c.Spec || g.Floor != c.Floor || g.Arch != c.Arch ||
			g.Machine != c.Machine || g.MemMiB != c.MemMiB || g.Accel != c.Accel {
			t.Errorf("config %d = %+v, want %+v", i, g, c)
		}
		var want []Sample
		run := 0
		for _, s := range c.Samples {
			if s.Error == "" {
				run++ // failed runs are not in the file: runs renumber
				want = append(want, Sample{Run: run, Metrics: s.Metrics})
			}
		}
		if !reflect.DeepEqual(g.Samples, want) {
			t.Errorf("%s: samples %+v, want %+v", c.ID, g.Samples, want)
		}
		if !reflect.DeepEqual(g.Stats["boot.all_ready"], c.Stats["boot.all_ready"]) {
			t.Errorf("%s: stats not recomputed", c.ID)
		}
	}
}

// TestBenchfmtEscaping round-trips names that the format would otherwise
// split, cut or rescale.
func TestBenchfmtEscaping(t *testing.T) {
	metrics := map[string]float64{
		"boot.task.load modules": 1, // a space ends a field
		"boot.task.a/b":          2, // "/" makes a denominator
		"boot.task.50%":          3, // "%" starts an escape
		"boot.task.x-ns":         4, // a token "ns" would be rescaled
		"boot.task.ünïcode":      5,
		"custom.no_unit":         6,
		"custom.looks-sec":       7, // unitless, but ends like a unit
		"mem.service_rss.a*b":    8,
		"disk.component.x-MB-ns": 9,
	}
	r := &Results{Schema: SchemaVersion, Runs: 1, Configs: []Config{{
		ID: "my spec/v2/riscv-64", Name: "my spec/v2", Spec: "my spec/v2", Machine: "virt=x", Arch: "riscv-64",
		Samples: []Sample{{Run: 1, Metrics: metrics}},
	}}}
	r.Configs[0].Summarize(nil)
	var buf bytes.Buffer
	if err := Write(&buf, r, FormatBenchfmt, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := parseResults(buf.Bytes(), "out.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v\n%s", got, r, buf.String())
	}

	// The benchmark name alone keeps the configuration.
	name := benchfmtName(&r.Configs[0])
	c := configOfBenchName(benchfmt.Name(name))
	if c.Name != "my spec/v2" || c.Machine != "virt=x" || c.Arch != "riscv-64" {
		t.Errorf("from %q: %+v", name, c)
	}
	// Units map back to the metric names.
	for metric := range metrics {
		m, _ := LookupMetric(metric)
		unit := benchfmtUnit(metric, m.Unit)
		if strings.ContainsAny(unit, " /*") {
			t.Errorf("unit %q for %s has a separator", unit, metric)
		}
		if _, tidied := benchunit.Tidy(1, unit); tidied != unit {
			t.Errorf("unit %q for %s is rescaled to %q", unit, metric, tidied)
		}
		if back, u := metricOfBenchfmtUnit(unit); back != metric || u != m.Unit {
			t.Errorf("unit %q reads back as %q %q, want %q %q", unit, back, u, metric, m.Unit)
		}
	}
}

// TestReadForeignBenchfmt reads `go test -bench` output: each benchmark is a
// configuration, each unit a metric.
func TestReadForeignBenchfmt(t *testing.T) {
	const text = `goos: linux
goarch: amd64
pkg: github.com/kitrun/kitrun/bench
cpu: AMD EPYC 7B13
BenchmarkMinimalVsFloor-8   	      10	         0 ns/op	         0.1502 floor-poweroff-s	         0.5123 ready-s	         3.411 ready/floor
BenchmarkMinimalVsFloor-8   	      10	         0 ns/op	         0.1498 floor-poweroff-s	         0.5098 ready-s	         3.403 ready/floor
PASS
ok  	github.com/kitrun/kitrun/bench	12.345s
`
	got, err := parseResults([]byte(text), "bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Configs) != 1 || got.Configs[0].ID != "MinimalVsFloor-8" {
		t.Fatalf("configs %+v, want one, MinimalVsFloor-8", got.Configs)
	}
	want := []Sample{
		{Run: 1, Metrics: map[string]float64{"ns/op": 0, "floor-poweroff-s": 0.1502, "ready-s": 0.5123, "ready/floor": 3.411}},
		{Run: 2, Metrics: map[string]float64{"ns/op": 0, "floor-poweroff-s": 0.1498, "ready-s": 0.5098, "ready/floor": 3.403}},
	}
	if !reflect.DeepEqual(got.Configs[0].Samples, want) {
		t.Errorf("samples %+v, want %+v", got.Configs[0].Samples, want)
	}
}

// TestBenchfmtLongError keeps lines short enough for benchfmt readers,
// which fail on lines over 64 KiB, however long an error is.
func TestBenchfmtLongError(t *testing.T) {
	r := exampleResults()
	long := strings.Repeat("qemu-system-x86_64: stderr line é\n", 5000) // ~170 KB
	for run := 4; run < 40; run++ {
		r.Configs[1].Samples = append(r.Configs[1].Samples, Sample{Run: run, Error: long})
	}
	r.Configs[1].Summarize(nil)
	var buf bytes.Buffer
	if err := Write(&buf, r, FormatBenchfmt, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(buf.String(), "\n") {
		if len(line) > 8<<10 {
			t.Errorf("line %d is %d bytes", i+1, len(line))
		}
	}
	rd := benchfmt.NewReader(bytes.NewReader(buf.Bytes()), "out.txt")
	for rd.Scan() {
	}
	if err := rd.Err(); err != nil {
		t.Errorf("benchfmt reader: %v", err)
	}
	got, err := parseResults(buf.Bytes(), "out.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := got.Configs[1].Samples[len(got.Configs[1].Samples)-1]
	if s.Run != 39 || len(s.Error) > benchfmtMaxError || !strings.HasSuffix(s.Error, "…") ||
		!strings.HasPrefix(long, strings.TrimSuffix(s.Error, "…")) || !utf8.ValidString(s.Error) {
		t.Errorf("last sample: run %d, error of %d bytes, %q...", s.Run, len(s.Error), s.Error[:40])
	}
	if got.Configs[1].Failed != 37 {
		t.Errorf("failed = %d, want 37", got.Configs[1].Failed)
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijkl", 10, "abcdefg…"}, // "…" is 3 bytes
		{"abcdeéééé", 10, "abcdeé…"},
		{"abcdeéééé", 9, "abcde…"}, // not half an é
	}
	for _, tt := range tests {
		if got := truncateUTF8(tt.s, tt.n); got != tt.want || len(got) > tt.n {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
