package bench

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func reportBytes(t *testing.T, r *Results, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, r, format, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadResults(t *testing.T) {
	r := testResults()
	for _, format := range []string{FormatJSON, FormatBenchfmt} {
		path := writeTemp(t, "results."+format, reportBytes(t, r, format))
		got, err := ReadResults(path)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: read back %+v, want %+v", format, got, r)
		}
	}
}

func TestReadResultsDetectsJSON(t *testing.T) {
	// Leading space and a byte order mark do not hide JSON.
	data := append([]byte("\ufeff \n\t"), reportBytes(t, testResults(), FormatJSON)...)
	got, err := parseResults(data, "r.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testResults()) {
		t.Errorf("read back %+v", got)
	}
}

func TestReadResultsErrors(t *testing.T) {
	jsonText := string(reportBytes(t, testResults(), FormatJSON))
	benchText := string(reportBytes(t, testResults(), FormatBenchfmt))
	benchLine := strings.Index(benchText, "\nBenchmarkBoot/spec=floor") + 1
	// Line numbers of the first benchmark line, and of its "1 0.1502".
	firstBench := strings.Count(benchText[:benchLine], "\n") + 1

	tests := []struct {
		name string
		text string
		want []string // each in the error
	}{
		{"empty", "", []string{"results.txt: empty file"}},
		{"blank", " \n\n\t\n", []string{"results.txt: empty file"}},
		{"truncated JSON", jsonText[:len(jsonText)/2], []string{"results.txt:", "truncated JSON"}},
		{"JSON syntax error", strings.Replace(jsonText, `"runs": 5,`, `"runs": 5,,`, 1),
			[]string{"results.txt:16:13:", "invalid character ','"}},
		{"JSON wrong type", strings.Replace(jsonText, `"run": 2,`, `"run": "two",`, 1),
			[]string{"results.txt:", "cannot unmarshal string", "run"}},
		{"newer schema", strings.Replace(jsonText, `"schema": 1`, `"schema": 2`, 1),
			[]string{"results.txt: results schema 2 is newer than this kitrun reads (1)"}},
		{"unknown schema", strings.Replace(jsonText, `"schema": 1`, `"schema": 0`, 1),
			[]string{"results.txt: unknown results schema 0"}},
		{"JSON without schema", `{"configs": []}`, []string{`results.txt: not kitrun results: JSON with no "schema"`}},
		{"duplicate config", strings.Replace(jsonText, `"id": "floor/x86_64/q35/256M/tcg"`, `"id": "minimal/x86_64/q35/256M/tcg"`, 1),
			[]string{"results.txt: configuration minimal/x86_64/q35/256M/tcg appears twice"}},
		{"benchfmt bad value", strings.Replace(benchText, " 1 0.1502 ", " 1 0.15O2 ", 1),
			[]string{"results.txt:" + strconv.Itoa(firstBench) + ": parsing measurement"}},
		{"benchfmt missing unit", strings.Replace(benchText, " 1 0.1502 boot.power_off-sec\n", " 1 0.1502\n", 1),
			[]string{"results.txt:" + strconv.Itoa(firstBench) + ": missing units"}},
		{"benchfmt truncated", benchText[:len(benchText)-20],
			[]string{"results.txt:" + strconv.Itoa(strings.Count(benchText, "\n")) + ": incomplete last line", "truncated"}},
		{"benchfmt newer schema", strings.Replace(benchText, `{"schema":1,`, `{"schema":3,`, 1),
			[]string{"results.txt:8: results schema 3 is newer"}},
		{"benchfmt bad kitrun line", strings.Replace(benchText, `# kitrun-config: {"bench"`, `# kitrun-config: {bench"`, 1),
			[]string{"bad kitrun-config line"}},
		{"benchfmt failed run of no config", strings.Replace(benchText, `# kitrun-failed: {"bench":"Boot/spec=minimal`, `# kitrun-failed: {"bench":"Boot/spec=maximal`, 1),
			[]string{"results.txt:", `kitrun-failed line for benchmark "Boot/spec=maximal`}},
		{"no results", "goos: linux\nsome text\n", []string{"results.txt: no benchmark results"}},
		{"benchfmt metric twice", "BenchmarkBoot/spec=a 1 1 boot.all_ready-sec 2 boot.all_ready-sec\n",
			[]string{"results.txt:1: metric boot.all_ready appears twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, "results.txt", []byte(tt.text))
			_, err := ReadResults(path)
			if err == nil {
				t.Fatalf("ReadResults succeeded, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestReadResultsMissingFile(t *testing.T) {
	if _, err := ReadResults(filepath.Join(t.TempDir(), "nope.json")); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("ReadResults(missing) = %v, want an error naming the file", err)
	}
}
