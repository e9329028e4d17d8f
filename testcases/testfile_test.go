package testcases

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/spec"
)

// TestMalformedTestFile checks that every mistake of the malformed test
// file is reported at once, each at its FILE:LINE:COLUMN with what would be
// valid.
func TestMalformedTestFile(t *testing.T) {
	_, err := ParseTestFile("testdata/malformed/test.yml")
	var errs *spec.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want *spec.Errors", err)
	}
	want := []string{
		`testdata/malformed/test.yml:4:1: unknown key "lables" in test file; did you mean "labels"? valid keys: summary, labels,`,
		`testdata/malformed/test.yml:5:10: timeout: "2 minutes" is not a duration; use Go syntax like 500ms, 10s, 2m`,
		`testdata/malformed/test.yml:6:6: ssh must be true or false, found a scalar "yes please"`,
		`testdata/malformed/test.yml:8:5: unknown assertion kind "servces_ready"; did you mean "services_ready"? valid kinds: services_ready,`,
		`testdata/malformed/test.yml:9:5: exec runs over SSH; add ` + "`ssh: true`" + ` to the test file`,
		`testdata/malformed/test.yml:10:5: unknown key "stauts" in exec assertion; did you mean "status"? valid keys: status, stdout, stderr, stdin, timeout`,
		`testdata/malformed/test.yml:11:14: console: "unclosed (" is not a valid Go regular expression: missing closing )`,
		`testdata/malformed/test.yml:12:5: file runs over SSH; add ` + "`ssh: true`" + ` to the test file`,
		`testdata/malformed/test.yml:12:11: file: "relative/path" is not an absolute guest path; start it with /`,
		`testdata/malformed/test.yml:13:11: file.mode: "0999" is not an octal mode; write it like "0644"`,
		`testdata/malformed/test.yml:15:5: tcp and console are two assertions; give each its own list entry`,
		`testdata/malformed/test.yml:16:19: halts_itself: only true makes sense; remove the entry instead`,
	}
	if len(errs.List) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs.List), len(want), err)
	}
	for i, w := range want {
		if i >= len(errs.List) {
			break
		}
		if got := errs.List[i].Error(); !strings.HasPrefix(got, w) {
			t.Errorf("error %d:\n got %s\nwant %s…", i, got, w)
		}
	}
}

func TestParseTestFileEveryKind(t *testing.T) {
	tf, err := ParseTestBytes("t.yml", []byte(`
summary: all kinds
labels: [a, b-c]
arches: [amd64]
timeout: 90s
repeat: 2
ssh: true
publish: ["8080", 9090]
mem: 512M
implicit: false
allow_console: ["known warning"]
expect:
  - services_ready: hello
  - service_fails: [broken]
    timeout: 5s
  - service_restarted: flaky
    times: 2
  - tasks_succeeded: [render, check]
  - task_fails: bad
    status: 3
  - event: "^all-ready$"
  - events_in_order: [init-start, all-ready]
  - tcp: 8080
    send: "ping\n"
    expect: pong
  - exec: /usr/bin/demo check /etc/hostname x
    status: 1
    stdout: ok
    stderr: "^$"
    stdin: input
    timeout: 10s
  - file: /etc/motd
    exists: true
    type: file
    mode: 0444
    uid: 0
    gid: 65534
    size: 8
    contains: welcome
  - file: /usr/bin/link
    target: /usr/bin/hello
  - console: "listening"
  - console_not: "error"
  - shutdown: graceful
    shutdown_tasks: [goodbye]
    grace: 5s
  - halts_itself: true
  - reboots_itself: true
  - allow_console: ["another"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if tf.Summary != "all kinds" || len(tf.Labels) != 2 || tf.Arches[0] != "x86_64" || tf.Timeout != 90*time.Second ||
		tf.Repeat != 2 || !tf.SSH || tf.MemoryMiB != 512 || tf.Implicit || len(tf.AllowConsole) != 2 {
		t.Errorf("top level: %+v", tf)
	}
	if got := tf.publishedPorts(); len(got) != 2 || got[0] != 8080 || got[1] != 9090 {
		t.Errorf("published ports %v", got)
	}
	if len(tf.Expect) != 17 {
		t.Fatalf("%d assertions, want 17", len(tf.Expect))
	}
	byKind := map[string]Assertion{}
	for _, a := range tf.Expect {
		if _, dup := byKind[a.Kind]; !dup {
			byKind[a.Kind] = a
		}
	}
	if a := byKind[KindServicesReady]; len(a.Names) != 1 || a.Names[0] != "hello" || a.Pos.Line != 13 || a.Pos.Column != 5 {
		t.Errorf("services_ready %+v", a)
	}
	if a := byKind[KindServiceRestarted]; a.Times != 2 || a.Names[0] != "flaky" {
		t.Errorf("service_restarted %+v", a)
	}
	if a := byKind[KindTaskFails]; *a.Status != 3 {
		t.Errorf("task_fails status %v", *a.Status)
	}
	if a := byKind[KindTCP]; a.Port != 8080 || a.Send != "ping\n" || a.Pattern.String() != "pong" {
		t.Errorf("tcp %+v", a)
	}
	if a := byKind[KindExec]; *a.Status != 1 || a.Stdin != "input" || a.Timeout != 10*time.Second || a.Stdout.String() != "ok" {
		t.Errorf("exec %+v", a)
	}
	if a := byKind[KindFile]; a.Mode != "0444" || *a.UID != 0 || *a.GID != 65534 || *a.Size != 8 || a.Type != "file" || !a.Exists {
		t.Errorf("file %+v", a)
	}
	if a := byKind[KindShutdown]; a.Grace != 5*time.Second || a.ShutdownTasks[0] != "goodbye" {
		t.Errorf("shutdown %+v", a)
	}
	if a := byKind[KindExec]; a.Text != `exec: /usr/bin/demo check /etc/hostname x, status: 1, stdout: ok, stderr: "^$", stdin: input, timeout: 10s` {
		t.Errorf("exec text %q", a.Text)
	}
}

func TestParseTestFileDefaults(t *testing.T) {
	tf, err := ParseTestBytes("t.yml", []byte("expect:\n  - file: /x\n    exists: false\n  - exec: ls\n"))
	if err == nil {
		t.Fatal("exec without ssh parsed")
	}
	tf, err = ParseTestBytes("t.yml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if tf.Repeat != 1 || !tf.Implicit || tf.MemoryMiB != 256 || tf.Timeout != 0 || tf.SSH {
		t.Errorf("defaults %+v", tf)
	}
}

func TestParseTestFileErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"expect: {a: b}", `t.yml:1:9: expect must be a list of assertions`},
		{"expect:\n  - hello\n", `t.yml:2:5: an expect entry must be a mapping such as ` + "`services_ready: [hello]`"},
		{"expect:\n  - timeout: 3s\n", `t.yml:2:5: this expect entry names no assertion; start it with one of services_ready,`},
		{"expect:\n  - console_not: x\n    timeout: 1s\n", `t.yml:3:5: unknown key "timeout" in console_not assertion; console_not takes no other keys`},
		{"ssh: true\nexpect:\n  - file: /x\n    type: directory\n", `t.yml:4:11: file.type: "directory" is not valid; valid values: file, dir, symlink, other`},
		{"ssh: true\nexpect:\n  - file: /x\n    type: fiel\n", `t.yml:4:11: file.type: "fiel" is not valid; did you mean "file"?`},
		{"expect:\n  - tcp: 99999\n", `t.yml:2:10: tcp: 99999 is out of range; use a guest port 1-65535`},
		{"publish: [http]\n", `t.yml:1:11: publish: "http" is not a guest port`},
		{"arches: [sparc]\n", `t.yml:1:9: arches: unknown architecture "sparc"`},
		{"labels: [\"a,b\"]\n", `t.yml:1:9: labels: "a,b" is not a valid label`},
		{"mem: lots\n", `t.yml:1:6: mem: bad memory size "lots"`},
		{"repeat: 0\n", `t.yml:1:9: repeat: 0 is out of range; use a count from 1 to 1000`},
		{"expect:\n  - services_ready: []\n", `t.yml:2:21: services_ready must be a name or a non-empty list of names`},
		{"a: [\n", `t.yml:1:1: invalid YAML: did not find expected node content`},
		{"- a\n", `t.yml:1:1: a test file must be a mapping, found a list`},
		{"summary: a\nsummary: b\n", `t.yml:2:1: duplicate key "summary" in test file (first at line 1); remove one`},
	} {
		_, err := ParseTestBytes("t.yml", []byte(tc.yaml))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s…", tc.yaml, err, tc.want)
		}
	}
}

func TestCheckSpecNames(t *testing.T) {
	tf, err := ParseTestBytes("t.yml", []byte(`
expect:
  - services_ready: [helo]
  - task_fails: goodbye
  - shutdown: graceful
    shutdown_tasks: [goodby]
  - tcp: 8080
`))
	if err != nil {
		t.Fatal(err)
	}
	s := &spec.Spec{File: "spec.yml",
		Services: []spec.Service{{Name: "hello"}},
		Onboot:   []spec.Task{{Name: "render"}},
		Onshut:   []spec.Task{{Name: "goodbye"}},
	}
	err = tf.CheckSpec(s)
	want := []string{
		`t.yml:3:5: services_ready: service "helo" is not in spec.yml; did you mean "hello"? valid: hello`,
		`t.yml:4:5: task_fails: onboot task "goodbye" is not in spec.yml; valid: render`,
		`t.yml:5:5: shutdown: onshutdown task "goodby" is not in spec.yml; did you mean "goodbye"? valid: goodbye`,
		`t.yml:7:5: tcp: the host reaches guest ports through the guest's network, and spec.yml has none; add ` + "`network: {mode: auto}`" + ` to it`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

// TestTestFileAliasLimits checks that test.yml shares the spec's bounds on
// alias expansion: 4,000 aliases to a 10,000-element list (2.2 s and 2.9 GiB
// allocated before the bounds) are refused where the limit is crossed, and
// an alias that contains itself (which sent the summary renderer into
// unbounded recursion) is refused too.
func TestTestFileAliasLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("expect:\n  - console: &big [0" + strings.Repeat(",0", 9999) + "]\n")
	for range 4000 {
		b.WriteString("  - {console: *big}\n")
	}
	for _, tc := range []struct{ yaml, want string }{
		{b.String(), `t.yml:11:15: alias *big names 10001 values and 10000 bytes of text (anchored at line 2), which takes the document past kitrun's limit of 100000 values`},
		{"expect:\n  - &e {console: [*e]}\n", `t.yml:2:19: alias *e names a value that contains the alias itself`},
		{"summary: x\n---\nsummary: y\n", `t.yml:2:1: a kitrun YAML file holds one document`},
		{"#" + strings.Repeat("x", spec.MaxFileBytes), `t.yml:1:1048577: file is larger than the 1024 KiB limit`},
	} {
		_, err := ParseTestBytes("t.yml", []byte(tc.yaml))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%.40q:\n got %.300v\nwant %s…", tc.yaml, err, tc.want)
		}
	}
}

func TestTestFileWithAFewAliases(t *testing.T) {
	tf, err := ParseTestBytes("t.yml", []byte(`
labels: &l [smoke]
arches: [amd64]
expect:
  - services_ready: &svc [web, db]
  - services_ready: *svc
  - console: &banner "listening on"
  - console: *banner
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(tf.Expect) != 4 || strings.Join(tf.Expect[1].Names, ",") != "web,db" || tf.Expect[3].Pattern.String() != "listening on" {
		t.Errorf("aliased assertions: %+v", tf.Expect)
	}
}

// A test may start from a snapshot unless it says `snapshot: false` or
// checks the boot itself; asking for one with a boot check is an error at
// the `snapshot:` value, naming the check.
func TestSnapshotSetting(t *testing.T) {
	tf, err := ParseTestBytes("t.yml", []byte("ssh: true\nexpect:\n  - services_ready: [web]\n  - exec: \"true\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := tf.SnapshotOK(); !ok {
		t.Errorf("runtime-only test: snapshot refused (%s)", why)
	}
	tf, err = ParseTestBytes("t.yml", []byte("snapshot: false\nexpect:\n  - services_ready: [web]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := tf.SnapshotOK(); ok || why != "snapshot: false" {
		t.Errorf("snapshot: false: ok %v, %q", ok, why)
	}
	tf, err = ParseTestBytes("t.yml", []byte("expect:\n  - console: hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := tf.SnapshotOK(); ok || why != "console at t.yml:2:5 checks the boot" {
		t.Errorf("console check: ok %v, %q", ok, why)
	}
	_, err = ParseTestBytes("t.yml", []byte("snapshot: true\nexpect:\n  - events_in_order: [a, b]\n"))
	if err == nil || !strings.Contains(err.Error(), "t.yml:1:11: snapshot: true, but events_in_order at t.yml:3:5 checks the boot") {
		t.Errorf("snapshot: true with a boot check: %v", err)
	}
	_, err = ParseTestBytes("t.yml", []byte("snapshot: maybe\n"))
	if err == nil || !strings.Contains(err.Error(), "t.yml:1:11: snapshot must be true or false") {
		t.Errorf("snapshot: maybe: %v", err)
	}
}
