package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/perf/benchfmt"

	kbench "github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestBenchEndToEnd runs `kitrun bench --floor` on real VMs, writes
// benchfmt, and reads it back with x/perf's own reader.
func TestBenchEndToEnd(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "new.txt")
	cmd := exec.Command(bin, "bench", filepath.Join(qemutest.RepoRoot(t), "examples", "minimal.yml"),
		"--runs", "2", "--warmup", "0", "--floor", "--accel", "tcg", "--settle", "0s",
		"--format", "benchfmt", "-o", out, "--results-dir", filepath.Join(dir, "results"),
		"--record", "--db", filepath.Join(dir, "history.db"))
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kitrun bench: %v\n%s", err, log)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := map[string]int{}
	units := map[string]bool{}
	r := benchfmt.NewReader(f, out)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.Result:
			lines[string(rec.Name.Full())]++
			for _, v := range rec.Values {
				units[v.Unit] = true
			}
		case *benchfmt.SyntaxError:
			t.Fatalf("benchfmt: %v", rec)
		}
	}
	if len(lines) != 2 {
		t.Errorf("want 2 benchmarks (minimal and floor), got %v", lines)
	}
	for name, n := range lines {
		if n != 2 {
			t.Errorf("%s: %d result lines, want one per run (2)", name, n)
		}
	}
	for _, u := range []string{"boot.all_ready-sec", "boot.power_off-sec", "mem.qemu_pss-B", "disk.initrd-B"} {
		if !units[u] {
			t.Errorf("no %s values (units: %v)", u, units)
		}
	}
	// The JSON kept in the results dir has the ratio to the floor.
	saved, _ := filepath.Glob(filepath.Join(dir, "results", "*.json"))
	if len(saved) != 1 {
		t.Fatalf("results dir holds %v", saved)
	}
	res, err := kbench.ReadResults(saved[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.Interrupted || res.Schema != kbench.SchemaVersion || res.Host.CPUs == 0 {
		t.Errorf("results header %+v", res)
	}
	var ratio float64
	for _, c := range res.Configs {
		if s, ok := c.Stats["ratio.all_ready_floor"]; ok {
			ratio = s.Median
		}
	}
	if ratio < 0.8 || ratio > 3 {
		t.Errorf("ratio to the floor %v is not plausible", ratio)
	}
	// --record put the run in the history, with the spec's commit (this
	// checkout) and the backend.
	if res.Backend != "qemu" {
		t.Errorf("results backend %q, want qemu", res.Backend)
	}
	ls, err := exec.Command(bin, "history", "ls", "--db", filepath.Join(dir, "history.db"), "--metric", "boot.all_ready,boot.power_off").CombinedOutput()
	if err != nil || !regexp.MustCompile(`minimal/x86_64/\S+  boot.all_ready`).Match(ls) ||
		!regexp.MustCompile(`floor/x86_64/\S+  boot.power_off`).Match(ls) || strings.Count(string(ls), "\n#1 ") != 2 {
		t.Errorf("history ls after bench --record: %v\n%s", err, ls)
	}
}

// TestBenchRecordsFailures: a boot that fails is a failed sample with its
// reason; the bench goes on and exits 7.
func TestBenchRecordsFailures(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	dir := t.TempDir()
	spec := qemutest.WriteSpec(t, "failing", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
services:
  - name: broken
    go: %s
    args: [no-such-job]
    restart: never
    ready: {file: /run/never}
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/demo")))
	out := filepath.Join(dir, "r.json")
	cmd := exec.Command(bin, "bench", spec, "--runs", "2", "--warmup", "0", "--accel", "tcg", "--cooldown", "0s",
		"--format", "json", "-o", out, "--results-dir", dir)
	log, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 7 {
		t.Fatalf("exit %d, want 7\n%s", code, log)
	}
	res, err := kbench.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Configs[0]
	if c.Failed != 2 || len(c.Samples) != 2 || !strings.Contains(c.Samples[0].Error, "service broken failed") {
		t.Errorf("config %s: failed %d, samples %+v", c.ID, c.Failed, c.Samples)
	}
}

// TestBenchInterrupt: Ctrl-C finishes the run in progress, reports every
// finished sample and exits 130.
func TestBenchInterrupt(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	cmd := exec.Command(bin, "bench", filepath.Join(qemutest.RepoRoot(t), "examples", "minimal.yml"),
		"--runs", "50", "--warmup", "0", "--accel", "tcg", "--settle", "0s", "--cooldown", "0s", "--format", "json", "-o", out, "--results-dir", dir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "run 2/50") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	go func() {
		for sc.Scan() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(err); code != 130 {
			t.Fatalf("exit %d, want 130", code)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("kitrun bench did not stop after SIGINT")
	}
	res, err := kbench.ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || len(res.Configs[0].Samples) < 2 || len(res.Configs[0].Samples) > 4 {
		t.Errorf("interrupted=%v with %d samples, want 2-3 kept", res.Interrupted, len(res.Configs[0].Samples))
	}
}

// TestBenchCompareGate drives `kitrun bench compare` as a nightly gate:
// quiet on noise, exit 8 on a real regression, a clear error on a corrupt
// file.
func TestBenchCompareGate(t *testing.T) {
	bin := buildKitrun(t)
	dir := t.TempDir()
	write := func(name string, shift float64, seed int64) string {
		rng := rand.New(rand.NewSource(seed))
		c := kbench.Config{ID: "minimal/x86_64/q35/256M/tcg", Name: "minimal", Arch: "x86_64", Machine: "q35", MemMiB: 256, Accel: "tcg"}
		for i := 1; i <= 10; i++ {
			v := 2.0 * shift * (1 + 0.02*rng.NormFloat64())
			c.Samples = append(c.Samples, kbench.Sample{Run: i, Metrics: map[string]float64{"boot.all_ready": v, "disk.initrd": 1613174}})
		}
		c.Summarize(nil)
		r := &kbench.Results{Schema: kbench.SchemaVersion, Runs: 10, Configs: []kbench.Config{c}}
		p := filepath.Join(dir, name)
		if err := kbench.WriteFile(p, r, kbench.FormatJSON, kbench.ReportOptions{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("old.json", 1, 1)
	noise := write("noise.json", 1, 2)
	slower := write("slower.json", 1.10, 3)
	out, err := exec.Command(bin, "bench", "compare", old, noise, "--max-regression", "5%").CombinedOutput()
	if code := exitCode(err); code != 0 {
		t.Errorf("noise: exit %d, want 0\n%s", code, out)
	}
	out, err = exec.Command(bin, "bench", "compare", old, slower, "--max-regression", "5%").CombinedOutput()
	if code := exitCode(err); code != 8 || !strings.Contains(string(out), "boot.all_ready") {
		t.Errorf("10%% slower: exit %d, want 8\n%s", code, out)
	}
	corrupt := filepath.Join(dir, "corrupt.json")
	b, _ := os.ReadFile(old)
	os.WriteFile(corrupt, b[:len(b)/2], 0o644)
	out, err = exec.Command(bin, "bench", "compare", old, corrupt).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "corrupt.json") {
		t.Errorf("corrupt file: exit %d, want 1 naming the file\n%s", code, out)
	}
	var js map[string]any
	if json.Unmarshal(b, &js) != nil {
		t.Error("old.json is not JSON")
	}
}

// TestBenchFormatIsTheReports: --format names the report's format; an image
// format given there is an error that points at --image-format, before
// anything is built.
func TestBenchFormatIsTheReports(t *testing.T) {
	bin := buildKitrun(t)
	out, err := exec.Command(bin, "bench", "examples/minimal.yml", "--format", "raw-efi").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "use --image-format raw-efi") || !strings.Contains(string(out), "valid: table, json") {
		t.Errorf("bench --format raw-efi: exit %d, %s", exitCode(err), out)
	}
	out, err = exec.Command(bin, "bench", "examples/minimal.yml", "--format", "yaml").CombinedOutput()
	if exitCode(err) != 1 || strings.Contains(string(out), "--image-format") {
		t.Errorf("bench --format yaml: exit %d, %s", exitCode(err), out)
	}
}
