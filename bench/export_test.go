package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCompareFormats(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	old, cur := synthResults(rng, 10, 1, 0.03, 0), synthResults(rng, 10, 1.2, 0.03, 100)
	c, err := Compare(old, cur, CompareOptions{MaxRegression: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := c.WriteFormat(&js, FormatJSON); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Regressions int `json:"regressions"`
		Rows        []struct {
			Config, Metric          string
			Delta, P                *float64
			Significant, Regression bool
			Old, New                Stats
		} `json:"rows"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, js.String())
	}
	if len(got.Rows) != 4 || got.Regressions != len(c.Regressions()) || got.Regressions != 2 {
		t.Fatalf("rows %d, regressions %d (want 4 rows, 2 regressions: time and PSS; 100 B more initrd is within 5%%)\n%s", len(got.Rows), got.Regressions, js.String())
	}
	for _, r := range got.Rows {
		if r.Metric == "disk.initrd" && r.P != nil {
			t.Errorf("exact metric: p = %v, want null (no test)", *r.P)
		}
		if r.Metric == "boot.all_ready" && (r.P == nil || *r.P >= 0.05 || !r.Regression || r.Old.N != 10) {
			t.Errorf("boot.all_ready row %+v", r)
		}
	}

	var cs bytes.Buffer
	if err := c.WriteFormat(&cs, FormatCSV); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 5 || records[0][0] != "config" || records[0][10] != "regression" {
		t.Fatalf("CSV: %q", records)
	}
	if err := c.WriteFormat(&cs, "xml"); err == nil || !strings.Contains(err.Error(), "json or csv") {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestGitHubActionBenchmark(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, testResults(), FormatGitHubActionBenchmark, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	var entries []struct {
		Name, Unit, Range, Extra string
		Value                    float64
	}
	if err := json.Unmarshal(b.Bytes(), &entries); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	byName := map[string]int{}
	for i, e := range entries {
		byName[e.Name] = i
	}
	i, ok := byName["minimal/x86_64/q35/256M/tcg boot.all_ready"]
	if !ok {
		t.Fatalf("no boot.all_ready entry in %s", b.String())
	}
	// Four successful runs: 0.5098 0.5123 0.5150 0.5201.
	if e := entries[i]; e.Unit != "s" || !approxEqual(e.Value, (0.5123+0.5150)/2) || !strings.HasPrefix(e.Range, "± ") || !strings.Contains(e.Extra, "n=4") {
		t.Errorf("entry %+v", e)
	}
	if _, ok := byName["floor/x86_64/q35/256M/tcg boot.power_off"]; !ok {
		t.Error("no floor entry")
	}
	for name := range byName {
		if strings.HasSuffix(name, "mem.guest_available") || strings.HasSuffix(name, "mem.guest_total") {
			t.Errorf("%s: higher is better, cannot be customSmallerIsBetter", name)
		}
	}
}
