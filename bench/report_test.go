package bench

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// exampleResults is a bench small enough to show whole.
func exampleResults() *Results {
	r := &Results{
		Schema: SchemaVersion, Kitrun: "v0.4.0", QEMU: "8.2.2",
		Host:    Host{Hostname: "bench1", OS: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0-18-amd64", CPU: "AMD EPYC 7B13", CPUs: 8, MemBytes: 16 << 30, GoArch: "amd64"},
		Started: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Finished: time.Date(2026, 3, 1, 12, 0, 42, 0, time.UTC),
		Runs: 3, Warmup: 1,
		Configs: []Config{
			{ID: "floor/x86_64/q35/256M/kvm", Name: "floor", Arch: "x86_64", Machine: "q35", MemMiB: 256,
				Accel: "kvm", AccelUsed: "kvm", Kernel: "6.1.0-18-amd64", Floor: true,
				Samples: []Sample{
					{Run: 1, Metrics: map[string]float64{"boot.power_off": 0.1021}},
					{Run: 2, Metrics: map[string]float64{"boot.power_off": 0.0998}},
					{Run: 3, Metrics: map[string]float64{"boot.power_off": 0.1003}},
				}},
			{ID: "minimal/x86_64/q35/256M/kvm", Name: "minimal", Spec: "minimal", Arch: "x86_64", Machine: "q35", MemMiB: 256,
				Accel: "kvm", AccelUsed: "kvm", Kernel: "6.1.0-18-amd64",
				Samples: []Sample{
					{Run: 1, Metrics: map[string]float64{"boot.all_ready": 0.3123, "mem.qemu_pss": 47185920, "disk.initrd": 1234567}},
					{Run: 2, Error: "all-ready not reached within 1m0s"},
					{Run: 3, Metrics: map[string]float64{"boot.all_ready": 0.3051, "mem.qemu_pss": 47190016, "disk.initrd": 1234567}},
				}},
		},
	}
	for i := range r.Configs {
		r.Configs[i].Summarize(nil)
	}
	addFloorRatios(r)
	return r
}

func ExampleWrite_table() {
	Write(os.Stdout, exampleResults(), FormatTable, ReportOptions{})
	// Output:
	// kitrun v0.4.0, QEMU 8.2.2
	// host bench1: AMD EPYC 7B13, 8 CPUs, 16.0 GiB RAM; Debian GNU/Linux 12 (bookworm), kernel 6.1.0-18-amd64
	// started 2026-03-01 12:00:00 UTC, 42s
	// 3 runs per configuration, after 1 warm-up run
	//
	// floor/x86_64/q35/256M/kvm: floor, x86_64 q35, 256 MiB, accel kvm, kernel 6.1.0-18-amd64
	//   metric            median   mean ± stddev    CV      min       max       p95  n
	//   boot.power_off  100.3 ms  100.7 ± 1.2 ms  1.2%  99.8 ms  102.1 ms  101.9 ms  3
	// failed: 0 of 3 runs
	//
	// minimal/x86_64/q35/256M/kvm: spec minimal, x86_64 q35, 256 MiB, accel kvm, kernel 6.1.0-18-amd64
	//   metric                   median   mean ± stddev    CV       min       max       p95  n
	//   boot.all_ready         308.7 ms  308.7 ± 5.1 ms  1.6%  305.1 ms  312.3 ms  311.9 ms  2
	//   mem.qemu_pss           45.0 MiB  45.0 ± 0.0 MiB  0.0%  45.0 MiB  45.0 MiB  45.0 MiB  2
	//   disk.initrd             1.2 MiB   1.2 ± 0.0 MiB  0.0%   1.2 MiB   1.2 MiB   1.2 MiB  2
	//   ratio.all_ready_floor     3.05x    3.05 ± 0.01x  0.4%     3.04x     3.06x     3.06x  2
	// failed: 1 of 3 runs
	//   run 2: all-ready not reached within 1m0s
	//
	// all-ready / floor power-off, paired by round (geometric mean, 95% CI):
	//   minimal/x86_64/q35/256M/kvm  3.050x  [2.945, 3.160] ±3.5%, 2 pairs; medians 308.7 ms / 100.3 ms = 3.08x (floor floor/x86_64/q35/256M/kvm)
}

func ExampleWrite_benchfmt() {
	Write(os.Stdout, exampleResults(), FormatBenchfmt, ReportOptions{Metrics: []string{"boot.*", "disk.*"}})
	// Output:
	// goos: linux
	// goarch: amd64
	// cpu: AMD EPYC 7B13
	// pkg: kitrun/bench
	// kitrun-version: v0.4.0
	// qemu: 8.2.2
	// accel: kvm
	// # kitrun-results: {"schema":1,"kitrun_version":"v0.4.0","host":{"hostname":"bench1","os":"Debian GNU/Linux 12 (bookworm)","kernel":"6.1.0-18-amd64","cpu":"AMD EPYC 7B13","cpus":8,"mem_bytes":17179869184,"goarch":"amd64"},"qemu_version":"8.2.2","started":"2026-03-01T12:00:00Z","finished":"2026-03-01T12:00:42Z","runs":3,"warmup":1,"configs":null}
	//
	// Unit boot.all_ready-sec better=lower
	// Unit boot.power_off-sec better=lower
	// Unit disk.initrd-B better=lower assume=exact
	//
	// # kitrun-config: {"bench":"Boot/spec=floor/machine=q35/mem=256M/accel=kvm/arch=x86_64","id":"floor/x86_64/q35/256M/kvm","name":"floor","arch":"x86_64","machine":"q35","mem_mib":256,"accel":"kvm","accel_used":"kvm","kernel_version":"6.1.0-18-amd64","floor":true,"failed":0,"runs":[1,2,3]}
	// BenchmarkBoot/spec=floor/machine=q35/mem=256M/accel=kvm/arch=x86_64 1 0.1021 boot.power_off-sec
	// BenchmarkBoot/spec=floor/machine=q35/mem=256M/accel=kvm/arch=x86_64 1 0.0998 boot.power_off-sec
	// BenchmarkBoot/spec=floor/machine=q35/mem=256M/accel=kvm/arch=x86_64 1 0.1003 boot.power_off-sec
	//
	// # kitrun-config: {"bench":"Boot/spec=minimal/machine=q35/mem=256M/accel=kvm/arch=x86_64","id":"minimal/x86_64/q35/256M/kvm","name":"minimal","spec":"minimal","arch":"x86_64","machine":"q35","mem_mib":256,"accel":"kvm","accel_used":"kvm","kernel_version":"6.1.0-18-amd64","failed":1,"runs":[1,3]}
	// # kitrun-failed: {"bench":"Boot/spec=minimal/machine=q35/mem=256M/accel=kvm/arch=x86_64","run":2,"error":"all-ready not reached within 1m0s"}
	// BenchmarkBoot/spec=minimal/machine=q35/mem=256M/accel=kvm/arch=x86_64 1 0.3123 boot.all_ready-sec 1234567 disk.initrd-B
	// BenchmarkBoot/spec=minimal/machine=q35/mem=256M/accel=kvm/arch=x86_64 1 0.3051 boot.all_ready-sec 1234567 disk.initrd-B
}

func TestWriteUnknownFormat(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, testResults(), "yaml", ReportOptions{})
	if err == nil || !strings.Contains(err.Error(), `"yaml"`) || !strings.Contains(err.Error(), "benchfmt") {
		t.Errorf("Write(yaml) = %v, want an error naming the format and the valid ones", err)
	}
	if buf.Len() != 0 {
		t.Errorf("Write(yaml) wrote %q", buf.String())
	}
}

func TestWriteBadMetricSelector(t *testing.T) {
	err := Write(&bytes.Buffer{}, testResults(), FormatCSV, ReportOptions{Metrics: []string{"boot.nope"}})
	if err == nil || !strings.Contains(err.Error(), "boot.nope") {
		t.Errorf("Write with metric boot.nope = %v, want an error naming it", err)
	}
}

// TestWriteTableAligned checks that each configuration's table has its
// columns aligned, so every row is as wide as the header.
func TestWriteTableAligned(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, testResults(), FormatTable, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, block := range strings.Split(out, "\n\n")[1:] {
		lines := strings.Split(block, "\n")
		if !strings.HasPrefix(strings.TrimSpace(lines[1]), "metric") {
			continue
		}
		width := utf8.RuneCountInString(lines[1])
		rows := 0
		for _, l := range lines[2:] {
			if strings.HasPrefix(l, "failed:") {
				break
			}
			rows++
			if w := utf8.RuneCountInString(l); w != width {
				t.Errorf("row %q is %d wide, header %d", l, w, width)
			}
		}
		if rows == 0 {
			t.Errorf("no rows in block %q", block)
		}
	}
	// Compare words, so that this does not depend on column widths.
	words := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"boot.all_ready 513.6 ms 514.3 ± 4.4 ms 0.9% 509.8 ms 520.1 ms 519.3 ms 4",
		"mem.qemu_pss 45.0 MiB 45.0 ± 0.0 MiB 0.0% 45.0 MiB 45.0 MiB 45.0 MiB 4",
		"ratio.all_ready_floor 3.42x 3.43 ± 0.03x 0.9% 3.40x 3.47x 3.46x 4",
		"failed: 1 of 5 runs run 3: all-ready not reached within 1m0s",
		"minimal/x86_64/q35/256M/tcg 3.429x [3.382, 3.476] ±1.4%, 4 pairs; medians 513.6 ms / 150.0 ms = 3.42x (floor floor/x86_64/q35/256M/tcg)",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestFloorFor(t *testing.T) {
	r := &Results{Configs: []Config{
		{ID: "floor-tcg", Floor: true, Arch: "x86_64", Machine: "q35", Accel: "tcg", Kernel: "6.1", MemMiB: 256},
		{ID: "floor-kvm-other-kernel", Floor: true, Arch: "x86_64", Machine: "q35", Accel: "kvm", Kernel: "6.6", MemMiB: 256},
		{ID: "floor-kvm", Floor: true, Arch: "x86_64", Machine: "q35", Accel: "kvm", Kernel: "6.1", MemMiB: 512},
		{ID: "floor-arm", Floor: true, Arch: "aarch64", Machine: "virt", Accel: "tcg", Kernel: "6.1"},
	}}
	tests := []struct {
		config Config
		want   string
	}{
		{Config{Arch: "x86_64", Machine: "q35", Accel: "tcg", Kernel: "6.1", MemMiB: 256}, "floor-tcg"},
		{Config{Arch: "x86_64", Machine: "q35", Accel: "kvm", Kernel: "6.1", MemMiB: 256}, "floor-kvm"}, // kernel before memory
		{Config{Arch: "x86_64", Machine: "q35", Accel: "kvm", Kernel: "6.6", MemMiB: 256}, "floor-kvm-other-kernel"},
		{Config{Arch: "aarch64", Machine: "virt", Accel: "tcg"}, "floor-arm"},
		{Config{Arch: "aarch64", Machine: "virt", Accel: "kvm"}, ""},
	}
	for _, tt := range tests {
		got := ""
		if f := floorFor(r, &tt.config); f != nil {
			got = f.ID
		}
		if got != tt.want {
			t.Errorf("floorFor(%+v) = %q, want %q", tt.config, got, tt.want)
		}
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	r := testResults()
	r.Interrupted = true
	var buf bytes.Buffer
	if err := Write(&buf, r, FormatJSON, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"schema": 1,`) || !strings.HasPrefix(buf.String(), "{\n  ") {
		t.Errorf("JSON is not indented with its schema:\n%.200s", buf.String())
	}
	got, err := parseResults(buf.Bytes(), "results.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("JSON round trip changed the results:\n got %+v\nwant %+v", got, r)
	}
}

func TestWriteCSV(t *testing.T) {
	r := testResults()
	var buf bytes.Buffer
	if err := Write(&buf, r, FormatCSV, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"config", "run", "metric", "value", "unit", "error"}; !reflect.DeepEqual(rows[0], want) {
		t.Errorf("header %q, want %q", rows[0], want)
	}
	// Rebuild the samples from the rows.
	got := make(map[string]map[int]Sample)
	for _, row := range rows[1:] {
		run, err := strconv.Atoi(row[1])
		if err != nil {
			t.Fatalf("row %q: run: %v", row, err)
		}
		if got[row[0]] == nil {
			got[row[0]] = make(map[int]Sample)
		}
		s := got[row[0]][run]
		s.Run = run
		if row[5] != "" {
			if row[2] != "" || row[3] != "" {
				t.Errorf("failed row %q has a metric", row)
			}
			s.Error = row[5]
		} else {
			v, err := strconv.ParseFloat(row[3], 64)
			if err != nil {
				t.Fatalf("row %q: value: %v", row, err)
			}
			if s.Metrics == nil {
				s.Metrics = make(map[string]float64)
			}
			s.Metrics[row[2]] = v
			if m, _ := LookupMetric(row[2]); row[4] != m.Unit {
				t.Errorf("row %q: unit %q, want %q", row, row[4], m.Unit)
			}
		}
		got[row[0]][run] = s
	}
	for _, c := range r.Configs {
		for _, s := range c.Samples {
			if g := got[c.ID][s.Run]; !reflect.DeepEqual(g, s) {
				t.Errorf("%s run %d: from CSV %+v, want %+v", c.ID, s.Run, g, s)
			}
		}
		if len(got[c.ID]) != len(c.Samples) {
			t.Errorf("%s: %d runs in CSV, want %d", c.ID, len(got[c.ID]), len(c.Samples))
		}
	}
}

func TestWriteMetricFilter(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, testResults(), FormatCSV, ReportOptions{Metrics: []string{"boot.all_ready", "disk.*"}})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := csv.NewReader(&buf).ReadAll()
	seen := make(map[string]bool)
	for _, row := range rows[1:] {
		seen[row[2]] = true
	}
	for name := range seen {
		if name != "" && name != "boot.all_ready" && !strings.HasPrefix(name, "disk.") {
			t.Errorf("metric %s reported, not selected", name)
		}
	}
	if !seen["boot.all_ready"] || !seen["disk.component.busybox"] || !seen[""] {
		t.Errorf("selected metrics or the failed run missing: %v", seen)
	}
	// The results themselves are not filtered.
	if _, ok := testResults().Configs[1].Stats["mem.qemu_pss"]; !ok {
		t.Error("filter changed the results")
	}
}

func TestWriteFile(t *testing.T) {
	nan := testResults()
	nan.Configs[0].Samples[0].Metrics["boot.power_off"] = math.NaN() // JSON cannot encode NaN
	nan.Configs[0].Summarize(nil)

	tests := []struct {
		name    string
		r       *Results
		format  string
		wantErr string
	}{
		{name: "table", r: testResults(), format: FormatTable},
		{name: "json", r: testResults(), format: FormatJSON},
		{name: "unknown format", r: testResults(), format: "xml", wantErr: "unknown report format"},
		{name: "unencodable", r: nan, format: FormatJSON, wantErr: "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "results.out")
			const previous = "previous results\n"
			if err := os.WriteFile(path, []byte(previous), 0o600); err != nil {
				t.Fatal(err)
			}
			err := WriteFile(path, tt.r, tt.format, ReportOptions{})
			got, readErr := os.ReadFile(path)
			if readErr != nil {
				t.Fatal(readErr)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("WriteFile = %v, want an error with %q", err, tt.wantErr)
				}
				if string(got) != previous {
					t.Errorf("failed WriteFile changed the file to %q", got)
				}
			} else {
				if err != nil {
					t.Fatalf("WriteFile: %v", err)
				}
				var want bytes.Buffer
				Write(&want, tt.r, tt.format, ReportOptions{})
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("file differs from Write's output")
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
					t.Errorf("mode %v, want 0644", fi.Mode().Perm())
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("directory holds %v, want only results.out", names)
			}
		})
	}
}

func TestWriteFileNoDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "results.json")
	if err := WriteFile(path, testResults(), FormatJSON, ReportOptions{}); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}
