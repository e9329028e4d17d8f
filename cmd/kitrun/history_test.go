package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kbench "github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/bench/history/historytest"
)

// TestHistoryCommands drives `kitrun history` and `kitrun dashboard` over
// results files of twelve generated nights, the last two 25% slower on one
// configuration.
func TestHistoryCommands(t *testing.T) {
	bin := buildKitrun(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "history.db")
	o := historytest.Options{Runs: 12, Configs: 2, Samples: 6, Seed: 3, Step: func(c, n int) float64 {
		if c == 0 && n >= 10 {
			return 0.25
		}
		return 0
	}}
	var files []string
	for n := range o.Runs {
		p := filepath.Join(dir, fmt.Sprintf("night%02d.json", n))
		if err := kbench.WriteFile(p, historytest.Results(o, n), kbench.FormatJSON, kbench.ReportOptions{}); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	run := func(want int, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if code := exitCode(err); code != want {
			t.Fatalf("kitrun %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		return string(out)
	}
	run(0, append([]string{"history", "import", "--db", db}, files[:10]...)...)
	if out := run(0, "history", "import", "--db", db, files[3]); !strings.Contains(out, "already in the history") {
		t.Errorf("importing twice:\n%s", out)
	}
	if out := run(0, "history", "check", "--db", db); !strings.Contains(out, "0 regression(s) in ") {
		t.Errorf("check of ten steady nights:\n%s", out)
	}
	run(0, "history", "import", "--db", db, files[10], files[11])
	out := run(8, "history", "check", "--db", db, "--max-regression", "5%")
	changed := "spec0/x86_64/q35/256M/auto"
	if !strings.Contains(out, changed+"  boot.all_ready") || !strings.Contains(out, "#11 2026-01-11") || strings.Contains(out, "spec1/") {
		t.Errorf("check after the slow night: want %s boot.all_ready changed at run #11 and nothing on spec1:\n%s", changed, out)
	}
	run(0, "history", "check", "--db", db, "--max-regression", "40%")

	out = run(0, "history", "ls", "--db", db, "--metric", "boot.all_ready", "--config", changed, "--since", "2026-01-05")
	if n := strings.Count(out, "\n#"); n != 8 {
		t.Errorf("ls since 2026-01-05: %d runs, want 8:\n%s", n, out)
	}
	if out := run(1, "history", "ls", "--db", db, "--since", "last tuesday"); !strings.Contains(out, "want an age like 30d") {
		t.Errorf("bad --since:\n%s", out)
	}

	svg := filepath.Join(dir, "plot.svg")
	run(0, "history", "plot", "--db", db, "--metric", "boot.all_ready", "-o", svg)
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(data, new(struct{})); err != nil {
		t.Errorf("plot is not XML: %v", err)
	}
	if n := strings.Count(string(data), "<circle"); n != 12*2*6 {
		t.Errorf("plot has %d sample points, want %d", n, 12*2*6)
	}
	if !strings.Contains(string(data), "change at run #11") {
		t.Error("plot does not mark the change at run #11")
	}

	site := filepath.Join(dir, "site")
	if out := run(0, "dashboard", "--db", db, "-o", site); !strings.Contains(out, "12 runs") {
		t.Errorf("dashboard:\n%s", out)
	}
	raw, err := kbench.ReadResults(filepath.Join(site, "runs", "12.json"))
	if err != nil || len(raw.Configs) != 2 || raw.Configs[0].Stats["boot.all_ready"].N != 6 {
		t.Errorf("raw results of run 12: %v", err)
	}

	missing := filepath.Join(dir, "typo.db")
	if out := run(1, "history", "check", "--db", missing); !strings.Contains(out, "no history at") {
		t.Errorf("missing history:\n%s", out)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("checking a missing history created it")
	}

	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not a database\n", 500)), 0o644)
	if out := run(1, "history", "check", "--db", junk); !strings.Contains(out, "not a readable SQLite database") {
		t.Errorf("corrupt history:\n%s", out)
	}

	// bench compare's machine-readable formats.
	out = run(8, "bench", "compare", files[9], files[11], "--format", "json")
	var cmp struct{ Regressions int }
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &cmp); err != nil || cmp.Regressions == 0 {
		t.Errorf("compare --format json: %v\n%s", err, out)
	}
	if out := run(1, "bench", "compare", files[10], files[11], "--format", "xml"); !strings.Contains(out, "valid: table, json, csv") {
		t.Errorf("compare --format xml:\n%s", out)
	}
}
