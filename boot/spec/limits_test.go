package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// amplified is the spec of issue 8 point 13: about 200 KiB of valid YAML in
// which 4,000 aliases each name a 10,000-element list, 40 million values
// once expanded. Before the limits, parsing it took 11 s and 1.3 GiB.
func amplified() string {
	var b strings.Builder
	b.WriteString("version: 1\nkernel: {package: linux-image-cloud}\nonboot:\n")
	b.WriteString("  - name: t0\n    command: /bin/true\n    args: &big [0")
	b.WriteString(strings.Repeat(",0", 9999))
	b.WriteString("]\n")
	for i := 1; i < 4000; i++ {
		fmt.Fprintf(&b, "  - {name: t%d, command: /bin/true, args: *big}\n", i)
	}
	return b.String()
}

// oneError parses src and returns its single error.
func oneError(t *testing.T, src string) *Error {
	t.Helper()
	_, err, _ := parseIn(t, "x.yml", src)
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 1 {
		t.Fatalf("want exactly one error, got %v", err)
	}
	return errs.List[0]
}

func TestAliasAmplificationIsRefused(t *testing.T) {
	src := amplified()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e := oneError(t, src)
	runtime.ReadMemStats(&after)
	// The anchored list holds 10,001 values; the tenth alias (line 15, the
	// ninth after the anchor's own list) takes the total past 100,000.
	want := Pos{File: "x.yml", Line: 15, Column: 42}
	if e.Pos != want || !strings.Contains(e.Msg, "alias *big names 10001 values") ||
		!strings.Contains(e.Msg, fmt.Sprintf("limit of %d values", MaxValues)) {
		t.Errorf("got %v\nwant an error at %v naming *big and the limit", e, want)
	}
	// Deterministic, unlike a timer: walking the expansion allocated about
	// 9 GiB in all before the limit; measuring it allocates a few MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("refusing the spec allocated %d MiB; want it refused before any expansion", alloc>>20)
	}
}

func TestAliasLimits(t *testing.T) {
	laughs := []string{"version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"}
	for i := 1; i < 10; i++ {
		laughs = append(laughs, fmt.Sprintf("a%d: &a%d [%s]", i, i, strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9)+fmt.Sprintf("*a%d", i-1)))
	}
	tests := []struct {
		name string
		src  string
		pos  Pos
		msg  string
	}{
		{
			name: "billion laughs",
			src:  strings.Join(laughs, "\n") + "\n",
			// 12,354 values before the list on line 6, 11,111 per *a3: the
			// eighth alias crosses 100,000.
			pos: Pos{"x.yml", 6, 10 + 7*len("*a3, ")},
			msg: "alias *a3 names 11111 values and 10000 bytes of text (anchored at line 5), which takes the document past kitrun's limit of 100000 values",
		},
		{
			name: "alias inside its own anchor",
			src:  "version: 1\nkernel: {package: linux-image-cloud}\nonboot: &x [*x]\n",
			pos:  Pos{"x.yml", 3, 13},
			msg:  "alias *x names a value that contains the alias itself",
		},
		{
			name: "nested alias inside its own anchor",
			src:  "version: 1\nkernel: &k {package: linux-image-cloud, modules: [{a: *k}]}\n",
			pos:  Pos{"x.yml", 2, 55},
			msg:  "alias *k names a value that contains the alias itself",
		},
		{
			name: "long text repeated",
			src: "version: 1\nkernel: {package: linux-image-cloud, cmdline: &c " + strings.Repeat("a", 600<<10) + "}\n" +
				"files:\n" + strings.Repeat("  - {path: /x, contents: *c}\n", 7),
			// The sixth repetition crosses 4 MiB.
			pos: Pos{"x.yml", 9, len("  - {path: /x, contents: ") + 1},
			msg: "alias *c names 1 values and 614400 bytes of text (anchored at line 2), which takes the document past kitrun's limit of 100000 values and 4096 KiB of text",
		},
		{
			name: "too many values without aliases",
			src:  "version: 1\nkernel: {package: linux-image-cloud}\nx: [" + strings.Repeat("0,", MaxValues) + "]\n",
			// Ten values come before the first 0 (column 5).
			pos: Pos{"x.yml", 3, 5 + 2*(MaxValues-10)},
			msg: "the document grows past kitrun's limit of 100000 values",
		},
		{
			name: "file too big",
			src:  "version: 1\n#" + strings.Repeat("x", MaxFileBytes) + "\n",
			pos:  Pos{"x.yml", 2, MaxFileBytes - 11 + 1},
			msg:  "file is larger than the 1024 KiB limit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := oneError(t, tt.src)
			if e.Pos != tt.pos || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %v\nwant %v: …%s…", e, tt.pos, tt.msg)
			}
		})
	}
}

func TestParseFileTooBig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yml")
	src := "version: 1\nkernel: {package: linux-image-cloud}\n" + strings.Repeat("# padding\n", MaxFileBytes/10)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(path)
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "file is larger than the 1024 KiB limit") || e.Pos.File != path {
		t.Fatalf("got %v, want the file size limit", err)
	}
	// Exactly at the limit is accepted.
	if err := os.WriteFile(path, []byte(src[:MaxFileBytes]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(path); err != nil {
		t.Fatalf("a spec of exactly %d bytes: %v", MaxFileBytes, err)
	}
}

func TestSpecWithAFewAliases(t *testing.T) {
	src := `version: 1
kernel: {package: linux-image-cloud}
onboot:
  - name: one
    command: /bin/one
    args: &args [--verbose, --config, /etc/app.conf]
  - name: two
    command: /bin/two
    args: *args
services:
  - name: app
    command: /bin/app
    args: *args
    env: &env {LOG_LEVEL: info}
  - name: worker
    command: /bin/worker
    env: *env
    restart: &restart {policy: always, backoff: 200ms}
  - name: cron
    command: /bin/cron
    restart: *restart
files:
  - {path: /bin/one, contents: "x", mode: 0755}
  - {path: /bin/two, contents: "x", mode: 0755}
  - {path: /bin/app, contents: "x", mode: 0755}
  - {path: /bin/worker, contents: "x", mode: 0755}
  - {path: /bin/cron, contents: "x", mode: 0755}
`
	s, err, _ := parseIn(t, "x.yml", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--verbose", "--config", "/etc/app.conf"}
	if !slices.Equal(s.Onboot[1].Program.Args, want) || !slices.Equal(s.Services[0].Program.Args, want) {
		t.Errorf("aliased args: %q, %q", s.Onboot[1].Program.Args, s.Services[0].Program.Args)
	}
	if s.Services[1].Program.Env["LOG_LEVEL"] != "info" || s.Services[2].Restart.Policy != "always" {
		t.Errorf("aliased env/restart: %+v, %+v", s.Services[1].Program.Env, s.Services[2].Restart)
	}
}

// BenchmarkParseAmplified measures refusing the amplified spec (before the
// limits: 11 s and 9 GiB allocated per parse).
func BenchmarkParseAmplified(b *testing.B) {
	data := []byte(amplified())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes("x.yml", data); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkParseFlatMax measures the worst a file within MaxFileBytes can
// cost without aliases: a flow list of single digits, about 500,000 values
// that yaml.v3 decodes before the value limit can be checked.
func BenchmarkParseFlatMax(b *testing.B) {
	src := "version: 1\nx: [" + strings.Repeat("0,", (MaxFileBytes-20)/2) + "]\n"
	data := []byte(src)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes("x.yml", data); err == nil {
			b.Fatal("accepted")
		}
	}
}
