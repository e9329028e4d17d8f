package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/bench"
)

// fakeResults makes one bench run: configs configurations, each with n
// samples of boot.all_ready around level (seconds) and a constant
// disk.initrd, started at t.
func fakeResults(t time.Time, level float64, n int, configs ...string) *bench.Results {
	r := &bench.Results{Schema: bench.SchemaVersion, Kitrun: "v-test", QEMU: "7.2.0", Backend: "qemu",
		Host:    bench.Host{Hostname: "ci", OS: "Debian", Kernel: "6.1", CPU: "x", CPUs: 2, MemBytes: 1 << 30, GoArch: "amd64"},
		Started: t, Finished: t.Add(time.Minute), Runs: n}
	for _, id := range configs {
		c := bench.Config{ID: id, Name: strings.Split(id, "/")[0], Arch: "x86_64", Machine: "q35", MemMiB: 256,
			Accel: "auto", AccelUsed: "tcg", Kernel: "6.1.0-test", GitCommit: "abc123"}
		for i := 1; i <= n; i++ {
			c.Samples = append(c.Samples, bench.Sample{Run: i, Metrics: map[string]float64{
				"boot.all_ready": level + 0.001*float64(i), "disk.initrd": 1500000}})
		}
		c.Samples = append(c.Samples, bench.Sample{Run: n + 1, Error: "boot deadline passed"})
		c.Summarize(nil)
		r.Configs = append(r.Configs, c)
	}
	return r
}

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRecordLoadOneRowPerSample(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	rec, err := s.Record(ctx, fakeResults(t0, 2.0, 5, "a/x", "b/x"), "r1.json")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Samples != 2*5*2 || rec.Duplicate {
		t.Fatalf("recorded %+v, want 20 samples", rec)
	}
	again, err := s.Record(ctx, fakeResults(t0, 2.0, 5, "a/x", "b/x"), "copy.json")
	if err != nil || !again.Duplicate || again.RunID != rec.RunID {
		t.Fatalf("recording the same run twice: %+v, %v; want a duplicate of run %d", again, err, rec.RunID)
	}
	if _, err := s.Record(ctx, fakeResults(t0.Add(24*time.Hour), 2.5, 5, "a/x"), "r2.json"); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.db.QueryRow("SELECT count(*) FROM samples").Scan(&rows); err != nil || rows != 30 {
		t.Fatalf("%d sample rows (%v), want 30", rows, err)
	}
	var failures int
	s.db.QueryRow("SELECT count(*) FROM failures").Scan(&failures)
	if failures != 3 {
		t.Fatalf("%d failures recorded, want 3", failures)
	}
	series, err := s.Load(ctx, Query{Metrics: []string{"boot.all_ready"}, SampleRuns: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 2 || series[0].Config.ID != "a/x" || len(series[0].Points) != 2 || len(series[1].Points) != 1 {
		t.Fatalf("series: %+v", series)
	}
	p := series[0].Points[1]
	if p.Run.Source != "r2.json" || len(p.Samples) != 5 || p.Samples[0] != 2.501 || p.Median != 2.503 || p.GitCommit != "abc123" {
		t.Fatalf("newest point %+v", p)
	}
	// Summaries only for older runs.
	series, err = s.Load(ctx, Query{Metrics: []string{"boot.*"}, SampleRuns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(series[0].Points[0].Samples); got != 0 || series[0].Points[0].Median != 2.003 {
		t.Fatalf("old point: %d samples, median %v; want a summary only", got, series[0].Points[0].Median)
	}
	// An older result imported later is placed by its start time.
	if _, err := s.Record(ctx, fakeResults(t0.Add(-24*time.Hour), 1.0, 5, "a/x"), "old.json"); err != nil {
		t.Fatal(err)
	}
	series, _ = s.Load(ctx, Query{Metrics: []string{"boot.all_ready"}, Configs: []string{"a/x"}})
	if len(series) != 1 || series[0].Points[0].Run.Source != "old.json" || series[0].Points[2].Run.Source != "r2.json" {
		t.Fatalf("order after a late import: %+v", series[0].Points)
	}
	series, _ = s.Load(ctx, Query{Configs: []string{"a/x"}, Since: t0.Add(time.Hour)})
	if len(series) != 2 || len(series[0].Points) != 1 {
		t.Fatalf("--since: %+v", series)
	}
}

func TestMedianCI(t *testing.T) {
	xs := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}
	m, lo, hi := MedianCI(xs)
	// n = 10: [x(2), x(9)] covers the median with 97.9%; [x(3), x(8)] only 89%.
	if m != 5.5 || lo != 2 || hi != 9 {
		t.Fatalf("MedianCI = %v [%v, %v], want 5.5 [2, 9]", m, lo, hi)
	}
	if m, lo, hi := MedianCI([]float64{3, 1, 2}); m != 2 || lo != 1 || hi != 3 {
		t.Fatalf("n=3: %v [%v, %v], want the range", m, lo, hi)
	}
	if m, _, _ := MedianCI(nil); !math.IsNaN(m) {
		t.Fatal("empty: want NaN")
	}
}

func TestOpenRefusesCorruptOtherAndNewer(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("this is not sqlite\n", 300)), 0o644)
	if _, err := Open(junk); err == nil || !strings.Contains(err.Error(), "not a readable SQLite database") {
		t.Fatalf("junk file: %v", err)
	}

	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec("CREATE TABLE t (x)")
	db.Close()
	if _, err := Open(other); err == nil || !strings.Contains(err.Error(), "not a kitrun history") {
		t.Fatalf("another program's database: %v", err)
	}

	newer := filepath.Join(dir, "newer.db")
	s, err := Open(newer)
	if err != nil {
		t.Fatal(err)
	}
	s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1))
	s.Close()
	_, err = Open(newer)
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "use a newer kitrun") {
		t.Fatalf("newer schema: %v", err)
	}

	// A store opened again is not migrated again.
	again := filepath.Join(dir, "again.db")
	for range 2 {
		s, err := Open(again)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestConcurrentWriters records from goroutines with stores of their own
// (as two processes would have) and from a second process, at once: every
// run must land, none be lost to SQLITE_BUSY.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	const writers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+1)
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	// Another process: this test binary, in helper mode.
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	helper.Env = append(os.Environ(), "KITRUN_HISTORY_HELPER_DB="+path)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for i := range each {
				start := t0.Add(time.Duration(w*each+i) * time.Hour)
				if _, err := s.Record(context.Background(), fakeResults(start, 2, 10, "a/x", "b/x"), "w"); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	if err := helper.Wait(); err != nil {
		t.Fatalf("the second process: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background())
	if err != nil || len(runs) != writers*each+helperRuns {
		t.Fatalf("%d runs (%v), want %d", len(runs), err, writers*each+helperRuns)
	}
}

const helperRuns = 5

// TestHelperWriter is the second process of TestConcurrentWriters.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("KITRUN_HISTORY_HELPER_DB")
	if path == "" {
		t.Skip("helper process of TestConcurrentWriters")
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range helperRuns {
		start := time.Date(2027, 1, 1, i, 0, 0, 0, time.UTC)
		if _, err := s.Record(context.Background(), fakeResults(start, 2, 10, "a/x", "b/x"), "helper"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfigRunsWithInterleavedJobs: two nightly jobs with different
// matrices share a store; each configuration's recent history is its own
// newest runs, not the store's.
func TestConfigRunsWithInterleavedJobs(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		config := "a/x"
		if i%2 == 1 {
			config = "b/x"
		}
		if _, err := s.Record(ctx, fakeResults(t0.Add(time.Duration(i)*time.Hour), 2, 4, config), "r"); err != nil {
			t.Fatal(err)
		}
	}
	series, err := s.Load(ctx, Query{Metrics: []string{"boot.all_ready"}, ConfigRuns: 2, SampleRuns: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 2 || len(series[0].Points) != 2 || len(series[1].Points) != 2 {
		t.Fatalf("want two configurations of two runs each: %+v", series)
	}
	if got := series[0].Points[1].Run.Started; !got.Equal(t0.Add(4 * time.Hour)) {
		t.Errorf("a/x's newest run started %v, want %v", got, t0.Add(4*time.Hour))
	}
	if len(series[1].Points[0].Samples) != 4 {
		t.Errorf("samples not read: %+v", series[1].Points[0])
	}
	// With LastRuns, the store's newest two runs: one of each.
	series, _ = s.Load(ctx, Query{Metrics: []string{"boot.all_ready"}, LastRuns: 2})
	if len(series) != 2 || len(series[0].Points) != 1 {
		t.Fatalf("LastRuns 2: %+v", series)
	}
}
