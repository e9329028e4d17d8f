package testcases

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
)

func TestDiscoverOrderAndNames(t *testing.T) {
	tc := "expect:\n  - console: x\n"
	dir := writeTree(t, map[string]string{
		"100_z/test.yml":                   tc,
		"100_z/spec.yml":                   "",
		"2_b/test.yml":                     tc,
		"2_b/spec.yml":                     "",
		"010_group/020_y/test.yml":         tc,
		"010_group/020_y/spec.yml":         "",
		"010_group/003_x/test.yml":         tc,
		"010_group/003_x/spec.yml":         "",
		"010_group/group.yml":              "setup: true\n",
		"010_group/004_sub/001_w/test.yml": tc,
		"010_group/004_sub/001_w/spec.yml": "",
		"plain/test.yml":                   tc,
		"plain/spec.yml":                   "",
		"nospec/test.yml":                  tc,
		"testdata/broken/test.yml":         tc,
		".hidden/test.yml":                 tc,
		"_off/test.yml":                    tc,
		"010_group/notes.txt":              "not a case",
	})
	cases, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names, groups []string
	for _, c := range cases {
		names = append(names, c.Name)
		groups = append(groups, c.Group)
	}
	want := []string{"b", "group/x", "group/sub/w", "group/y", "z", "nospec", "plain"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if want := []string{"", "group", "group/sub", "group", "", "", ""}; !reflect.DeepEqual(groups, want) {
		t.Errorf("groups %v, want %v", groups, want)
	}
	if c := cases[2]; len(c.Groups) != 1 || c.Groups[0].Name != "group" || c.Groups[0].Setup[0] != "true" {
		t.Errorf("group/sub/w groups: %+v", c.Groups)
	}
	if c := cases[5]; c.ParseErr == nil || !strings.Contains(c.ParseErr.Error(), "spec.yml: missing") {
		t.Errorf("nospec: %v", c.ParseErr)
	}

	// A directory holding cases/ is taken as its parent; a case directory
	// is one case.
	parent := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(parent, "cases")); err != nil {
		t.Fatal(err)
	}
	if got, err := Discover(parent); err != nil || len(got) != len(want) {
		t.Errorf("Discover(parent of cases/) = %d cases, %v", len(got), err)
	}
	if got, err := Discover(filepath.Join(dir, "010_group", "020_y")); err != nil || len(got) != 1 || got[0].Name != "y" {
		t.Errorf("Discover(one case) = %v, %v", got, err)
	}
}

func TestLabelFilter(t *testing.T) {
	f, err := ParseLabelFilter("network,!slow", "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels []string
		want   bool
	}{
		{[]string{"network", "x86_64"}, true},
		{[]string{"network", "x86_64", "slow"}, false},
		{[]string{"network"}, false},
		{[]string{"x86_64", "other"}, false},
	} {
		if got := f.Match(tc.labels); got != tc.want {
			t.Errorf("Match(%v) = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if f, _ := ParseLabelFilter(); !f.Match(nil) {
		t.Error("an empty filter must match everything")
	}
	if _, err := ParseLabelFilter("a b"); err == nil {
		t.Error("a label with a space was accepted")
	}
}

func TestNameFilter(t *testing.T) {
	f, err := ParseNameFilter("services/*,boot/cmd*", "net")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"services/restart":  true,
		"services/a/b":      true, // the group services/a matches services/*
		"boot/cmdline":      true,
		"boot/modules":      false,
		"net/publish":       true,
		"network/publish":   false,
		"servicesx/restart": false,
	} {
		if got := f.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	if _, err := ParseNameFilter("[a"); err == nil {
		t.Error("a bad glob was accepted")
	}
}

// otherArch is an arch that is not the host's.
func otherArch() string {
	for _, a := range arch.Names() {
		if a != arch.Host().Name {
			return a
		}
	}
	return "aarch64"
}

func TestRunOutcomesAndClosingLine(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	dir := writeTree(t, map[string]string{
		"010_ok/spec.yml":        sp,
		"010_ok/test.yml":        "summary: fine\nlabels: [quick]\nexpect:\n  - services_ready: [hello]\n  - console: hello world\n",
		"020_bad/spec.yml":       sp,
		"020_bad/test.yml":       "expect:\n  - console: never printed\n    timeout: 200ms\n  - services_ready: [hello]\n",
		"030_skip/spec.yml":      sp,
		"030_skip/test.yml":      "skip: not today\n",
		"040_arch/spec.yml":      sp,
		"040_arch/test.yml":      "arches: [" + otherArch() + "]\n",
		"050_malformed/spec.yml": sp,
		"050_malformed/test.yml": "expect:\n  - servces_ready: [hello]\n",
		"060_badspec/spec.yml":   "version: 1\nkernel: {package: linux-image-cloud}\nservices:\n  - {name: x, command: /usr/bin/nope, restrat: never}\n",
		"060_badspec/test.yml":   "",
		"070_badname/spec.yml":   sp,
		"070_badname/test.yml":   "expect:\n  - services_ready: [helo]\n",
	})
	l := &fakeLauncher{behave: func(test string, n int) behaviour {
		return behaviour{services: []string{"hello"}, console: []string{"hello world"}}
	}}
	results := t.TempDir()
	s, out := runFake(t, dir, l, Options{ResultsDir: results})
	want := map[string]Status{
		"ok": StatusPassed, "bad": StatusFailed, "skip": StatusSkipped, "arch": StatusSkipped,
		"malformed": StatusError, "badspec": StatusError, "badname": StatusError,
	}
	for name, st := range want {
		if r := resultOf(t, s, name); r.Status != st {
			t.Errorf("%s: %s (%s), want %s", name, r.Status, r.Message, st)
		}
	}
	if got := s.ClosingLine(); got != "1 passed, 4 failed, 2 skipped" {
		t.Errorf("closing line %q", got)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "1 passed, 4 failed, 2 skipped" {
		t.Errorf("last line printed %q", last)
	}
	for _, w := range []string{"PASS  ok (", "FAIL  bad (", "SKIP  skip: not today", "SKIP  arch: not for " + arch.Host().Name,
		"ERROR malformed (", `unknown assertion kind "servces_ready"; did you mean "services_ready"?`,
		`service "helo" is not in`, `unknown key "restrat" in service; did you mean "restart"?`} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Only the tests that got past their files booted.
	if got := strings.Join(l.launchLog, ","); got != "010_ok,020_bad" {
		t.Errorf("booted %s, want 010_ok,020_bad", got)
	}
	// Results are in discovery order; the failure names the assertion,
	// its position, and stops the ones after it.
	var order []string
	for _, r := range s.Results {
		order = append(order, r.Name)
	}
	if want := []string{"ok", "bad", "skip", "arch", "malformed", "badspec", "badname"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v", order)
	}
	bad := resultOf(t, s, "bad")
	if !strings.HasSuffix(bad.Message, "020_bad/test.yml:2:5: console: never printed, timeout: 200ms: waited 200ms for a console line matching /never printed/ (stage reached: all-ready)") {
		t.Errorf("bad message %q", bad.Message)
	}
	as := bad.Attempts[0].Assertions
	if as[1].Outcome != OutcomeFailed || as[2].Outcome != OutcomeNotRun || as[2].Kind != KindServicesReady {
		t.Errorf("bad assertions %+v", as)
	}
	if !strings.Contains(bad.Detail, "--- last console lines ---\n") || !strings.Contains(bad.Detail, "hello world") {
		t.Errorf("bad detail lacks the console:\n%s", bad.Detail)
	}
	ok := resultOf(t, s, "ok")
	if ok.Summary != "fine" || !slices.Contains(ok.Labels, "quick") || !slices.Contains(ok.Labels, arch.Host().Name) || !slices.Contains(ok.Labels, "linux") {
		t.Errorf("ok: %+v", ok)
	}
	// Per-test files.
	for _, f := range []string{"ok/console.log", "ok/events.log", "ok/result.json", "ok/assertions.txt", "bad/console.log", "results.json", "junit.xml"} {
		if _, err := os.Stat(filepath.Join(results, f)); err != nil {
			t.Error(err)
		}
	}
	ev, _ := os.ReadFile(filepath.Join(results, "ok/events.log"))
	if !strings.Contains(string(ev), " service-ready hello guest=") || !strings.Contains(string(ev), " all-ready guest=") {
		t.Errorf("events.log:\n%s", ev)
	}
	con, _ := os.ReadFile(filepath.Join(results, "ok/console.log"))
	if !strings.Contains(string(con), "hello world\n") {
		t.Errorf("console.log:\n%s", con)
	}
	rs, err := ReadSummary(filepath.Join(results, "results.json"))
	if err != nil || rs.Passed != 1 || rs.Failed != 4 || rs.Skipped != 2 || len(rs.Results) != 7 {
		t.Errorf("results.json: %+v, %v", rs, err)
	}
	if s.OK() {
		t.Error("a run with failures is OK")
	}
}

func TestLabelAndNameSelection(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	dir := writeTree(t, map[string]string{
		"010_net/010_a/spec.yml": sp, "010_net/010_a/test.yml": "labels: [network]\n",
		"010_net/020_b/spec.yml": sp, "010_net/020_b/test.yml": "labels: [network, slow]\n",
		"020_c/spec.yml": sp, "020_c/test.yml": "labels: [slow]\n",
	})
	l := &fakeLauncher{behave: func(string, int) behaviour { return behaviour{services: []string{"hello"}} }}
	labels, _ := ParseLabelFilter("network,!slow")
	s, _ := runFake(t, dir, l, Options{Labels: labels})
	if len(s.Results) != 1 || s.Results[0].Name != "net/a" {
		t.Errorf("labels network,!slow selected %+v", s.Results)
	}
	names, _ := ParseNameFilter("net/*")
	s, _ = runFake(t, dir, &fakeLauncher{behave: l.behave}, Options{Names: names})
	if len(s.Results) != 2 || s.Results[1].Name != "net/b" {
		t.Errorf("--run net/* selected %d", len(s.Results))
	}
}

func TestRetriesMarkFlaky(t *testing.T) {
	sp := specFor(t, false, []string{"hello", "other"}, nil)
	dir := writeTree(t, map[string]string{
		"010_flaky/spec.yml": sp, "010_flaky/test.yml": "expect:\n  - services_ready: [hello]\n",
		"020_steady/spec.yml": sp, "020_steady/test.yml": "repeat: 3\n",
	})
	behave := func(test string, n int) behaviour {
		b := behaviour{services: []string{"hello", "other"}}
		if test == "010_flaky" && n == 1 {
			b.failService = "other" // fails the implicit check on the first boot only
		}
		return b
	}
	l := &fakeLauncher{behave: behave}
	s, out := runFake(t, dir, l, Options{Retries: 2})
	r := resultOf(t, s, "flaky")
	if r.Status != StatusFlaky || len(r.Attempts) != 2 || r.Attempts[0].Passed || !r.Attempts[1].Passed {
		t.Fatalf("flaky: %s, %d attempts: %s", r.Status, len(r.Attempts), r.Message)
	}
	if !strings.Contains(r.Message, "passed on retry after attempt 1: ") || !strings.Contains(r.Message, "service other failed") {
		t.Errorf("flaky message %q", r.Message)
	}
	if r.Attempts[1].Console != "console.2.log" {
		t.Errorf("second attempt's console %q", r.Attempts[1].Console)
	}
	if st := resultOf(t, s, "steady"); st.Status != StatusPassed || len(st.Attempts) != 3 || st.Attempts[2].Repeat != 3 {
		t.Errorf("steady: %s with %d attempts", st.Status, len(st.Attempts))
	}
	if s.ClosingLine() != "2 passed, 0 failed, 0 skipped" || s.Flaky != 1 {
		t.Errorf("closing %q, flaky %d", s.ClosingLine(), s.Flaky)
	}
	if !strings.Contains(out, "FLAKY flaky (") || !strings.Contains(out, "flaky (passed on retry, counted as passed): flaky\n2 passed, 0 failed, 0 skipped") &&
		!strings.Contains(out, "flaky (passed on retry, counted as passed): flaky\n") {
		t.Errorf("output:\n%s", out)
	}

	// Without retries the same test fails, after one boot.
	s, _ = runFake(t, dir, &fakeLauncher{behave: behave}, Options{Names: NameFilter{Patterns: []string{"flaky"}}})
	if r := resultOf(t, s, "flaky"); r.Status != StatusFailed || len(r.Attempts) != 1 || !strings.Contains(r.Detail, "no service or onboot task failed unless expected, and kitinit reported no error: service other failed: exit status 1\n--- its last output ---\nother: fell over") {
		t.Errorf("without retries: %s %q", r.Status, r.Detail)
	}
}

func TestTimeoutKillsAndNamesStage(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, []string{"render"})
	dir := writeTree(t, map[string]string{
		"010_hang/spec.yml":    sp,
		"010_hang/test.yml":    "timeout: 300ms\n",
		"020_waiting/spec.yml": sp,
		"020_waiting/test.yml": "timeout: 300ms\nexpect:\n  - console: never\n",
	})
	l := &fakeLauncher{behave: func(test string, n int) behaviour {
		return behaviour{tasks: []string{"render"}, services: []string{"hello"}, hang: test == "010_hang"}
	}}
	s, _ := runFake(t, dir, l, Options{})
	hang := resultOf(t, s, "hang")
	if hang.Status != StatusFailed || !strings.HasPrefix(hang.Message, "timed out after 300ms during boot (stage reached: task-done render); the VM was killed") {
		t.Errorf("hang: %s %q", hang.Status, hang.Message)
	}
	if !strings.Contains(hang.Detail, "--- last console lines ---\n[    0.000000] Linux version") {
		t.Errorf("hang detail lacks the console:\n%s", hang.Detail)
	}
	waiting := resultOf(t, s, "waiting")
	if !strings.HasPrefix(waiting.Message, "timed out after 300ms during console: never (stage reached: all-ready); the VM was killed") {
		t.Errorf("waiting: %q", waiting.Message)
	}
	if all, n := l.killed(); !all || n != 2 {
		t.Errorf("of %d guests, not all were killed", n)
	}
}

func TestParallelWithinMemoryBudget(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	files := map[string]string{}
	for _, n := range []string{"01_a", "02_b", "03_c", "04_d", "05_e", "06_f"} {
		files[n+"/spec.yml"] = sp
		files[n+"/test.yml"] = "mem: 256M\n"
	}
	files["07_huge/spec.yml"] = sp
	files["07_huge/test.yml"] = "mem: 4G\n"
	dir := writeTree(t, files)
	l := &fakeLauncher{hold: 100 * time.Millisecond, behave: func(string, int) behaviour { return behaviour{services: []string{"hello"}} }}
	s, _ := runFake(t, dir, l, Options{Parallel: 4, MemBudgetMiB: 600})
	if l.maxMem > 600 || l.maxRun != 2 {
		t.Errorf("peak %d MiB in %d guests; want at most 600 MiB, which is 2 guests", l.maxMem, l.maxRun)
	}
	var order []string
	for _, r := range s.Results {
		order = append(order, r.Name)
	}
	if want := []string{"a", "b", "c", "d", "e", "f", "huge"}; !reflect.DeepEqual(order, want) {
		t.Errorf("results in order %v", order)
	}
	if r := resultOf(t, s, "huge"); r.Status != StatusError || !strings.Contains(r.Message, "needs 4096 MiB") {
		t.Errorf("huge: %s %q", r.Status, r.Message)
	}
	if s.Passed != 6 {
		t.Errorf("%d passed", s.Passed)
	}
}

func TestExpectedFailuresAndSelfHalt(t *testing.T) {
	sp := specFor(t, false, []string{"hello", "broken"}, []string{"prepare", "bad"})
	dir := writeTree(t, map[string]string{
		"01_svc/spec.yml":   sp,
		"01_svc/test.yml":   "expect:\n  - service_fails: broken\n  - services_ready: [hello]\n",
		"02_task/spec.yml":  sp,
		"02_task/test.yml":  "expect:\n  - tasks_succeeded: [prepare]\n  - task_fails: bad\n    status: 1\n  - console_not: service hello started\n",
		"03_halt/spec.yml":  sp,
		"03_halt/test.yml":  "expect:\n  - halts_itself: true\n",
		"04_wrong/spec.yml": sp,
		"04_wrong/test.yml": "expect:\n  - reboots_itself: true\n",
		"05_stray/spec.yml": sp,
		"05_stray/test.yml": "expect:\n  - services_ready: [hello]\n",
		"06_code/spec.yml":  sp,
		"06_code/test.yml":  "expect:\n  - task_fails: bad\n    status: 2\n",
	})
	l := &fakeLauncher{behave: func(test string, n int) behaviour {
		switch test {
		case "01_svc":
			return behaviour{services: []string{"hello"}, failService: "broken"}
		case "02_task", "06_code":
			return behaviour{tasks: []string{"prepare"}, failTask: "bad"}
		}
		return behaviour{services: []string{"hello", "broken"}, haltAfterReady: true}
	}}
	s, _ := runFake(t, dir, l, Options{})
	for name, want := range map[string]Status{"svc": StatusPassed, "task": StatusPassed, "halt": StatusPassed,
		"wrong": StatusFailed, "stray": StatusFailed, "code": StatusFailed} {
		r := resultOf(t, s, name)
		if r.Status != want {
			t.Errorf("%s: %s, want %s: %s", name, r.Status, want, r.Detail)
		}
	}
	for name, msg := range map[string]string{
		"wrong": "reboots_itself: true: the guest powered off instead of restarting",
		"stray": "the machine exited on its own (cleanly) at stage shutdown-done; expect `halts_itself: true` or `reboots_itself: true` if it should",
		"code":  "task_fails: bad, status: 2: task bad failed with exit status 1, want exit status 2",
	} {
		if r := resultOf(t, s, name); !strings.Contains(r.Message, msg) {
			t.Errorf("%s: %q lacks %q", name, r.Message, msg)
		}
	}
}

func TestAssertionsOverTheGuest(t *testing.T) {
	sp := specFor(t, true, []string{"hello"}, nil)
	dir := writeTree(t, map[string]string{
		"01_tcp/spec.yml":      sp,
		"01_tcp/test.yml":      "expect:\n  - tcp: 8080\n    expect: '^hello from fake\\n$'\n",
		"02_closed/spec.yml":   sp,
		"02_closed/test.yml":   "expect:\n  - tcp: 9090\n    timeout: 700ms\n",
		"03_exec/spec.yml":     sp,
		"03_exec/test.yml":     "ssh: true\nexpect:\n  - exec: check me\n    stdin: in\n    stdout: '^out:in$'\n  - exec: fail me\n    status: 0\n",
		"04_file/spec.yml":     sp,
		"04_file/test.yml":     "ssh: true\nexpect:\n  - file: /etc/motd\n    mode: \"0444\"\n    contains: welcome\n  - file: /gone\n    exists: false\n  - file: /etc/motd\n    mode: \"0644\"\n    uid: 1\n    contains: nope\n",
		"05_shutdown/spec.yml": sp,
		"05_shutdown/test.yml": "expect:\n  - shutdown: graceful\n    shutdown_tasks: [goodbye]\n  - console: 'reboot: Power down'\n",
		"06_unclean/spec.yml":  sp,
		"06_unclean/test.yml":  "",
		"07_panic/spec.yml":    sp,
		"07_panic/test.yml":    "",
		"08_allowed/spec.yml":  sp,
		"08_allowed/test.yml":  "allow_console: ['panic: expected']\n",
		"09_optout/spec.yml":   sp,
		"09_optout/test.yml":   "implicit: false\n",
		"10_events/spec.yml":   sp,
		"10_events/test.yml":   "expect:\n  - events_in_order: [init-start, service-ready hello, all-ready]\n  - event: '^modules-loaded$'\n",
	})
	l := &fakeLauncher{behave: func(test string, n int) behaviour {
		b := behaviour{services: []string{"hello"}, listen: map[int]string{8080: "hello from fake\n"}}
		switch test {
		case "03_exec":
			b.exec = func(cmd string, stdin []byte) (ExecResult, error) {
				if cmd == "fail me" {
					return ExecResult{Status: 3, Stderr: []byte("it broke\n")}, nil
				}
				return ExecResult{Stdout: append([]byte("out:"), stdin...)}, nil
			}
		case "04_file":
			b.files = map[string]FileInfo{"/etc/motd": {Type: "file", Mode: "0444", Content: []byte("welcome\n"), Size: 8}}
		case "06_unclean":
			b.unclean = true
		case "07_panic", "08_allowed", "09_optout":
			b.console = []string{"[svc] panic: expected trouble", "goroutine 1 [running]:"}
		}
		return b
	}}
	s, _ := runFake(t, dir, l, Options{Grace: 500 * time.Millisecond})
	for name, want := range map[string]string{
		"tcp":      "",
		"closed":   "tcp: 9090, timeout: 700ms: tcp 9090: not reachable within 700ms: connection closed at once",
		"exec":     "exec: fail me, status: 0: exec \"fail me\": exit status 3, want 0",
		"file":     "file /etc/motd: mode 0444, want 0644; uid 0, want 1; content does not match /nope/",
		"shutdown": "",
		"unclean":  "power-off at the end of the test was not clean: guest did not power off within 500ms",
		"panic":    "console shows no panic, BUG, oops or kernel warning: console line 3: [svc] panic: expected trouble (a Go panic)",
		"allowed":  "console line 4: goroutine 1 [running]: (a Go panic's stack trace)",
		"optout":   "",
		"events":   "",
	} {
		r := resultOf(t, s, name)
		if want == "" {
			if r.Status != StatusPassed {
				t.Errorf("%s: %s: %s", name, r.Status, r.Detail)
			}
			continue
		}
		if r.Status != StatusFailed || !strings.Contains(r.Detail, want) {
			t.Errorf("%s: %s, detail lacks %q:\n%s", name, r.Status, want, r.Detail)
		}
	}
	if d := resultOf(t, s, "exec").Detail; !strings.Contains(d, "--- stderr ---\nit broke") {
		t.Errorf("exec detail lacks stderr:\n%s", d)
	}
}

func TestGroupSetupAndTeardown(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	logFile := filepath.Join(t.TempDir(), "log")
	dir := writeTree(t, map[string]string{
		"010_g/group.yml":            "setup: [\"echo setup $KITRUN_GROUP >> " + logFile + "\"]\nteardown: echo teardown >> " + logFile + "\n",
		"010_g/010_a/spec.yml":       sp,
		"010_g/010_a/test.yml":       "",
		"010_g/020_b/spec.yml":       sp,
		"010_g/020_b/test.yml":       "",
		"020_bad/group.yml":          "setup: exit 3\nteardown: echo bad-teardown >> " + logFile + "\n",
		"020_bad/010_c/spec.yml":     sp,
		"020_bad/010_c/test.yml":     "",
		"030_typo/group.yml":         "setpu: true\n",
		"030_typo/010_d/spec.yml":    sp,
		"030_typo/010_d/test.yml":    "",
		"040_skipped/group.yml":      "setup: echo never >> " + logFile + "\n",
		"040_skipped/010_e/spec.yml": sp,
		"040_skipped/010_e/test.yml": "skip: off\n",
	})
	l := &fakeLauncher{behave: func(string, int) behaviour { return behaviour{services: []string{"hello"}} }}
	results := t.TempDir()
	s, _ := runFake(t, dir, l, Options{Parallel: 2, ResultsDir: results})
	// Groups run side by side (Parallel 2): only each group's own order
	// is fixed.
	log, _ := os.ReadFile(logFile)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	sorted := slices.Sorted(slices.Values(lines))
	if !reflect.DeepEqual(sorted, []string{"bad-teardown", "setup g", "teardown"}) ||
		slices.Index(lines, "setup g") > slices.Index(lines, "teardown") {
		t.Errorf("group commands ran as:\n%s", log)
	}
	for name, want := range map[string]Status{"g/a": StatusPassed, "g/b": StatusPassed, "bad/c": StatusError, "typo/d": StatusError, "skipped/e": StatusSkipped} {
		if r := resultOf(t, s, name); r.Status != want {
			t.Errorf("%s: %s, want %s (%s)", name, r.Status, want, r.Detail)
		}
	}
	if r := resultOf(t, s, "bad/c"); !strings.HasPrefix(r.Detail, "group bad: setup failed: `exit 3`: exit status 3") {
		t.Errorf("bad/c: %q", r.Detail)
	}
	if r := resultOf(t, s, "typo/d"); !strings.Contains(r.Detail, `group.yml:1:1: unknown key "setpu" in group file; did you mean "setup"?`) {
		t.Errorf("typo/d: %q", r.Detail)
	}
	if b, err := os.ReadFile(filepath.Join(results, "g", "setup.log")); err != nil || !strings.Contains(string(b), "$ echo setup") {
		t.Errorf("setup.log: %q, %v", b, err)
	}
}

func TestInterruptSkipsTheRest(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	dir := writeTree(t, map[string]string{
		"01_a/spec.yml": sp, "01_a/test.yml": "expect:\n  - console: never\n",
		"02_b/spec.yml": sp, "02_b/test.yml": "",
	})
	ctx, cancel := context.WithCancel(context.Background())
	l := &fakeLauncher{behave: func(string, int) behaviour {
		time.AfterFunc(100*time.Millisecond, cancel)
		return behaviour{services: []string{"hello"}}
	}}
	s, err := Run(ctx, Options{Dir: dir, Launcher: l, ResultsDir: t.TempDir(), MemBudgetMiB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Interrupted || s.OK() || s.Skipped != 2 || len(l.launchLog) != 1 {
		t.Errorf("interrupted %v, %s, %d boots", s.Interrupted, s.ClosingLine(), len(l.launchLog))
	}
}

func TestBootFailureIsReported(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	dir := writeTree(t, map[string]string{"01_a/spec.yml": sp, "01_a/test.yml": ""})
	l := &fakeLauncher{behave: func(string, int) behaviour {
		return behaviour{services: []string{"hello"}, bootFail: "hello", bootFailDetail: "ready probe tcp 8080 did not succeed within 1s"}
	}}
	s, _ := runFake(t, dir, l, Options{})
	r := s.Results[0]
	if r.Status != StatusFailed || r.Message != "boot failed: service hello failed: ready probe tcp 8080 did not succeed within 1s" {
		t.Errorf("%s %q", r.Status, r.Message)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"outcome":"failed"`) {
		t.Errorf("result JSON %s", b)
	}
}

func TestRecordWait(t *testing.T) {
	r := NewRecord(nil, nil)
	exited := make(chan struct{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.Write([]byte("partial"))
		r.Write([]byte(" line\nnext"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.Wait(ctx, exited, func(u Update) (bool, error) {
		return slices.Contains(u.Lines, "partial line"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Lines(); !reflect.DeepEqual(got, []string{"partial line", "next"}) {
		t.Errorf("lines %q", got)
	}
	close(exited)
	err = r.Wait(ctx, exited, func(Update) (bool, error) { return false, nil })
	if !errors.Is(err, errExited) {
		t.Errorf("wait on an exited machine: %v", err)
	}
}
