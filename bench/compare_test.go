package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestCompareSynthetic compares draws of known distributions: 10 samples a
// side, 3% noise (CV), with a fixed seed so that the draws, and so the
// verdicts, are the same on every run. (Over 2000 seeds, (a) finds a
// metric "significant" about 4% of the time, per metric — alpha at work —
// and (b) misses one of its two regressions 0.25% of the time.)
func TestCompareSynthetic(t *testing.T) {
	type verdict struct{ significant, regression bool }
	tests := []struct {
		name          string
		scale         float64 // new values are old ones times scale
		sizeDelta     float64 // bytes added to disk.initrd
		maxRegression float64
		want          map[string]verdict
	}{
		{
			name: "(a) same distribution", scale: 1, maxRegression: 0.05,
			want: map[string]verdict{
				"boot.all_ready":      {false, false},
				"mem.qemu_pss":        {false, false},
				"mem.guest_available": {false, false},
				"disk.initrd":         {false, false},
			},
		},
		{
			name: "(b) 10% worse, 5% allowed", scale: 1.10, maxRegression: 0.05,
			want: map[string]verdict{
				"boot.all_ready":      {true, true},
				"mem.qemu_pss":        {true, true},
				"mem.guest_available": {true, false}, // higher is better
				"disk.initrd":         {false, false},
			},
		},
		{
			name: "(c) 10% worse, 20% allowed", scale: 1.10, maxRegression: 0.20,
			want: map[string]verdict{
				"boot.all_ready":      {true, false},
				"mem.qemu_pss":        {true, false},
				"mem.guest_available": {true, false},
				"disk.initrd":         {false, false},
			},
		},
		{
			name: "(d) 10% better", scale: 0.90, maxRegression: 0.05,
			want: map[string]verdict{
				"boot.all_ready":      {true, false},
				"mem.qemu_pss":        {true, false},
				"mem.guest_available": {true, true}, // less available is worse
				"disk.initrd":         {false, false},
			},
		},
		{
			name: "(e) one more byte, 5% allowed", scale: 1, sizeDelta: 1, maxRegression: 0.05,
			want: map[string]verdict{"disk.initrd": {true, false}},
		},
		{
			name: "(e) one more byte, none allowed", scale: 1, sizeDelta: 1, maxRegression: 0,
			want: map[string]verdict{"disk.initrd": {true, true}},
		},
		{
			name: "(e) one byte less", scale: 1, sizeDelta: -1, maxRegression: 0,
			want: map[string]verdict{"disk.initrd": {true, false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2026, 3))
			old := synthResults(rng, 10, 1, 0.03, 0)
			new := synthResults(rng, 10, tt.scale, 0.03, tt.sizeDelta)
			cmp, err := Compare(old, new, CompareOptions{MaxRegression: tt.maxRegression})
			if err != nil {
				t.Fatal(err)
			}
			rows := make(map[string]Row)
			for _, r := range cmp.Rows {
				rows[r.Metric] = r
			}
			for metric, want := range tt.want {
				r, ok := rows[metric]
				if !ok {
					t.Errorf("%s: no row", metric)
					continue
				}
				if (verdict{r.Significant, r.Regression}) != want {
					t.Errorf("%s: significant %v, regression %v, want %+v (delta %+.3f, p %.4f)",
						metric, r.Significant, r.Regression, want, r.Delta, r.P)
				}
			}
			var regressions int
			for _, w := range tt.want {
				if w.regression {
					regressions++
				}
			}
			if len(tt.want) == 4 && len(cmp.Regressions()) != regressions {
				t.Errorf("Regressions() = %d rows, want %d", len(cmp.Regressions()), regressions)
			}
		})
	}
}

func TestCompareRow(t *testing.T) {
	old := synthResults(rand.New(rand.NewPCG(1, 1)), 10, 1, 0.03, 0)
	// 10% above the base, with noise too small to overlap the old values,
	// but enough to leave no ties.
	new := synthResults(rand.New(rand.NewPCG(1, 1)), 10, 1.1, 1e-6, 0)
	cmp, err := Compare(old, new, CompareOptions{MaxRegression: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cmp.Rows {
		if r.Metric != "boot.all_ready" {
			continue
		}
		if r.Config != "minimal/x86_64/q35/256M/tcg" || r.Unit != "s" || r.Old.N != 10 || r.New.N != 10 {
			t.Errorf("row %+v", r)
		}
		if want := (r.New.Median - r.Old.Median) / r.Old.Median; !approxEqual(r.Delta, want) || math.Abs(r.Delta-0.1) > 0.02 {
			t.Errorf("delta %v, want %v", r.Delta, want)
		}
		// Every new value is above every old one: U = 0, p = 2/C(20,10).
		if !approxEqual(r.P, 2/184756.0) {
			t.Errorf("p = %v, want %v", r.P, 2/184756.0)
		}
	}
}

func TestCompareFewSamples(t *testing.T) {
	// A doubling, but with 2 samples there is no test: not significant.
	old := synthResults(rand.New(rand.NewPCG(1, 2)), 2, 1, 0.03, 0)
	new := synthResults(rand.New(rand.NewPCG(3, 4)), 10, 2, 0.03, 0)
	cmp, err := Compare(old, new, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cmp.Rows {
		if r.Metric == "disk.initrd" {
			continue
		}
		if r.Significant || r.Regression || !math.IsNaN(r.P) || !strings.Contains(r.Note, "too few samples") {
			t.Errorf("%s with 2 samples: %+v", r.Metric, r)
		}
	}
}

func TestCompareConfigs(t *testing.T) {
	results := func(ids ...string) *Results {
		r := &Results{}
		for _, id := range ids {
			r.Configs = append(r.Configs, Config{ID: id, Samples: []Sample{{Run: 1, Metrics: map[string]float64{"boot.all_ready": 1}}}})
		}
		return r
	}

	// (g) Nothing in common.
	_, err := Compare(results("a/x86_64", "b/x86_64"), results("a/aarch64"), CompareOptions{})
	want := "results of different configurations: old has [a/x86_64 b/x86_64], new has [a/aarch64]"
	if err == nil || err.Error() != want {
		t.Errorf("Compare = %v, want %q", err, want)
	}

	// Some in common: the others are listed.
	cmp, err := Compare(results("a", "b", "c"), results("b", "d", "a"), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var compared []string
	for _, r := range cmp.Rows {
		compared = append(compared, r.Config)
	}
	if strings.Join(compared, " ") != "a b" || strings.Join(cmp.OnlyOld, " ") != "c" || strings.Join(cmp.OnlyNew, " ") != "d" {
		t.Errorf("compared %v, only old %v, only new %v; want [a b], [c], [d]", compared, cmp.OnlyOld, cmp.OnlyNew)
	}
}

func TestCompareMissingMetric(t *testing.T) {
	old := &Results{Configs: []Config{{ID: "a", Samples: []Sample{
		{Run: 1, Metrics: map[string]float64{"boot.all_ready": 1, "boot.task.gone": 0.1}}}}}}
	new := &Results{Configs: []Config{{ID: "a", Samples: []Sample{
		{Run: 1, Metrics: map[string]float64{"boot.all_ready": 1, "boot.task.added": 0.1}}}}}}
	cmp, err := Compare(old, new, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	notes := make(map[string]string)
	for _, r := range cmp.Rows {
		notes[r.Metric] = r.Note
	}
	if notes["boot.task.gone"] != "only in old" || notes["boot.task.added"] != "only in new" {
		t.Errorf("notes %v", notes)
	}
}

func TestCompareOptions(t *testing.T) {
	r := synthResults(rand.New(rand.NewPCG(1, 2)), 5, 1, 0.03, 0)
	for _, opts := range []CompareOptions{
		{Alpha: -0.1}, {Alpha: 1.5}, {MaxRegression: -0.05}, {MaxRegression: math.NaN()}, {Metrics: []string{"boot.allready"}},
	} {
		if _, err := Compare(r, r, opts); err == nil {
			t.Errorf("Compare with %+v succeeded", opts)
		}
	}
	cmp, err := Compare(r, r, CompareOptions{Metrics: []string{"mem.*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range cmp.Rows {
		if !strings.HasPrefix(row.Metric, "mem.") {
			t.Errorf("metric %s compared, not selected", row.Metric)
		}
	}
	if len(cmp.Rows) != 2 || cmp.Alpha != DefaultAlpha {
		t.Errorf("%d rows, alpha %v; want 2 and the default", len(cmp.Rows), cmp.Alpha)
	}
}

// TestCompareJSONWithBenchfmt compares the same results read from a JSON
// file and from a benchfmt file: everything matches, nothing changed.
func TestCompareJSONWithBenchfmt(t *testing.T) {
	r := testResults()
	jsonPath := writeTemp(t, "results.json", reportBytes(t, r, FormatJSON))
	benchPath := writeTemp(t, "results.txt", reportBytes(t, r, FormatBenchfmt))
	old, err := ReadResults(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	new, err := ReadResults(benchPath)
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := Compare(old, new, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.OnlyOld) != 0 || len(cmp.OnlyNew) != 0 {
		t.Errorf("unmatched configurations: %v, %v", cmp.OnlyOld, cmp.OnlyNew)
	}
	metrics := len(r.Configs[0].Stats) + len(r.Configs[1].Stats)
	if len(cmp.Rows) != metrics {
		t.Errorf("%d rows, want %d", len(cmp.Rows), metrics)
	}
	for _, row := range cmp.Rows {
		if row.Significant || row.Delta != 0 || !reflect.DeepEqual(row.Old, row.New) {
			t.Errorf("%s %s changed: %+v", row.Config, row.Metric, row)
		}
	}
	// The same comparison when the benchfmt file went through a tool that
	// keeps only the benchmark lines (config IDs then come from the names).
	var kept []string
	for _, line := range strings.Split(string(reportBytes(t, r, FormatBenchfmt)), "\n") {
		if !strings.HasPrefix(line, "# kitrun-") {
			kept = append(kept, line)
		}
	}
	stripped, err := ReadResults(writeTemp(t, "stripped.txt", []byte(strings.Join(kept, "\n"))))
	if err != nil {
		t.Fatal(err)
	}
	if cmp, err := Compare(old, stripped, CompareOptions{}); err != nil || len(cmp.OnlyOld)+len(cmp.OnlyNew) != 0 {
		t.Errorf("compare with stripped benchfmt: %v, unmatched %v %v", err, cmp.OnlyOld, cmp.OnlyNew)
	}
}

func TestComparisonWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 3))
	old := synthResults(rng, 10, 1, 0.03, 0)
	new := synthResults(rng, 10, 1.1, 0.03, 1)
	new.Configs = append(new.Configs, Config{ID: "other"})
	cmp, err := Compare(old, new, CompareOptions{MaxRegression: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := cmp.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	words := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"config metric old new delta p note",
		"minimal/x86_64/q35/256M/tcg boot.all_ready",
		"p=0.000 n=10+10 REGRESSION",
		"disk.initrd 12345678 B 12345679 B +8.1e-06% n=10+10 exact",
		"only in new: other",
		"2 regressions (a significant change at alpha 0.05, worse by more than 5.0%)",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "minimal/x86_64/q35/256M/tcg") != 1 {
		t.Errorf("config ID not shown once for its group:\n%s", out)
	}
}

func ExampleComparison_Write() {
	rng := rand.New(rand.NewPCG(7, 7))
	old := synthResults(rng, 10, 1, 0.03, 0)
	new := synthResults(rng, 10, 1.08, 0.03, 4096)
	// QEMU's memory as before: the same values, in another order.
	for i, s := range new.Configs[0].Samples {
		s.Metrics["mem.qemu_pss"] = old.Configs[0].Samples[(i+1)%10].Metrics["mem.qemu_pss"]
	}
	cmp, _ := Compare(old, new, CompareOptions{MaxRegression: 0.05})
	cmp.Write(os.Stdout)
	// Output:
	// config                       metric               old         new         delta    p                note
	// minimal/x86_64/q35/256M/tcg  boot.all_ready       504.5 ms    544.0 ms    +7.8%    p=0.000 n=10+10  REGRESSION
	//                              mem.guest_available  200.3 MiB   218.8 MiB   +9.2%    p=0.000 n=10+10
	//                              mem.qemu_pss         58.9 MiB    58.9 MiB    ~        p=1.000 n=10+10
	//                              disk.initrd          12345678 B  12349774 B  +0.033%  n=10+10          exact
	// 1 regression (a significant change at alpha 0.05, worse by more than 5.0%)
}

func TestParsePercent(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"5%", 0.05, false},
		{"5", 0.05, false},
		{"0.5%", 0.005, false},
		{" 10 % ", 0.10, false},
		{"0", 0, false},
		{"150%", 1.5, false},
		{"", 0, true},
		{"%", 0, true},
		{"five", 0, true},
		{"-5%", 0, true},
		{"NaN", 0, true},
		{"Inf%", 0, true},
		{"5%%", 0, true},
	}
	for _, tt := range tests {
		got, err := ParsePercent(tt.in)
		if (err != nil) != tt.wantErr || !approxEqual(got, tt.want) {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
