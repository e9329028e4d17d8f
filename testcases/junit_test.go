package testcases

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The JUnit schema as a consumer reads it (Jenkins' and Surefire's
// testsuite/testcase schema), written independently of the producer's
// structs. Attributes are pointers so that a missing one is told apart
// from an empty or zero one.
type xSuites struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    *string  `xml:"tests,attr"`
	Failures *string  `xml:"failures,attr"`
	Errors   *string  `xml:"errors,attr"`
	Skipped  *string  `xml:"skipped,attr"`
	Time     *string  `xml:"time,attr"`
	Suites   []xSuite `xml:"testsuite"`
}

type xSuite struct {
	Name      *string `xml:"name,attr"`
	Tests     *string `xml:"tests,attr"`
	Failures  *string `xml:"failures,attr"`
	Errors    *string `xml:"errors,attr"`
	Skipped   *string `xml:"skipped,attr"`
	Time      *string `xml:"time,attr"`
	Timestamp *string `xml:"timestamp,attr"`
	Cases     []xCase `xml:"testcase"`
}

type xCase struct {
	Classname *string `xml:"classname,attr"`
	Name      *string `xml:"name,attr"`
	Time      *string `xml:"time,attr"`
	Failure   *struct {
		Message *string `xml:"message,attr"`
		Type    *string `xml:"type,attr"`
		Text    string  `xml:",chardata"`
	} `xml:"failure"`
	Error *struct {
		Message *string `xml:"message,attr"`
		Text    string  `xml:",chardata"`
	} `xml:"error"`
	Skipped *struct {
		Message *string `xml:"message,attr"`
	} `xml:"skipped"`
	Flaky []struct {
		Message    *string `xml:"message,attr"`
		Type       *string `xml:"type,attr"`
		StackTrace string  `xml:"stackTrace"`
	} `xml:"flakyFailure"`
	SystemOut *string `xml:"system-out"`
}

func need(t *testing.T, what string, p *string) string {
	t.Helper()
	if p == nil {
		t.Errorf("%s: required attribute missing", what)
		return ""
	}
	return *p
}

func needInt(t *testing.T, what string, p *string) int {
	t.Helper()
	s := need(t, what, p)
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Errorf("%s = %q, want a count", what, s)
	}
	return n
}

func needTime(t *testing.T, what string, p *string) float64 {
	t.Helper()
	s := need(t, what, p)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		t.Errorf("%s = %q, want seconds", what, s)
	}
	return f
}

func TestJUnitReadByAConsumer(t *testing.T) {
	sp := specFor(t, false, []string{"hello", "other"}, nil)
	dir := writeTree(t, map[string]string{
		"010_top/spec.yml":           sp,
		"010_top/test.yml":           "",
		"020_grp/010_pass/spec.yml":  sp,
		"020_grp/010_pass/test.yml":  "",
		"020_grp/020_fail/spec.yml":  sp,
		"020_grp/020_fail/test.yml":  "expect:\n  - console: 'never <&> \"quoted\"'\n    timeout: 100ms\n",
		"020_grp/030_skip/spec.yml":  sp,
		"020_grp/030_skip/test.yml":  "skip: not here\n",
		"020_grp/040_error/spec.yml": sp,
		"020_grp/040_error/test.yml": "bogus: 1\n",
		"020_grp/050_flaky/spec.yml": sp,
		"020_grp/050_flaky/test.yml": "",
	})
	l := &fakeLauncher{behave: func(test string, n int) behaviour {
		b := behaviour{services: []string{"hello", "other"}, console: []string{"ctl \x1b[0m <xml> & co"}}
		if test == "050_flaky" && n == 1 {
			b.failService = "other"
		}
		return b
	}}
	results := t.TempDir()
	runFake(t, dir, l, Options{Retries: 1, ResultsDir: results})
	data, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), xml.Header) {
		t.Error("no XML declaration")
	}
	var doc xSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, data)
	}
	if len(doc.Suites) != 2 {
		t.Fatalf("%d suites, want 2 (kitrun, grp)", len(doc.Suites))
	}
	total := map[string]int{}
	for _, su := range doc.Suites {
		name := need(t, "testsuite name", su.Name)
		tests := needInt(t, name+" tests", su.Tests)
		failures := needInt(t, name+" failures", su.Failures)
		errs := needInt(t, name+" errors", su.Errors)
		skipped := needInt(t, name+" skipped", su.Skipped)
		suTime := needTime(t, name+" time", su.Time)
		need(t, name+" timestamp", su.Timestamp)
		if tests != len(su.Cases) {
			t.Errorf("%s: tests=%d but %d testcases", name, tests, len(su.Cases))
		}
		var f, e, s int
		var sum float64
		for _, c := range su.Cases {
			cn := need(t, "testcase name", c.Name)
			if cl := need(t, cn+" classname", c.Classname); cl != name {
				t.Errorf("%s: classname %q, want the group %q", cn, cl, name)
			}
			sum += needTime(t, cn+" time", c.Time)
			if c.Failure != nil {
				f++
				need(t, cn+" failure message", c.Failure.Message)
				need(t, cn+" failure type", c.Failure.Type)
			}
			if c.Error != nil {
				e++
				need(t, cn+" error message", c.Error.Message)
			}
			if c.Skipped != nil {
				s++
			}
		}
		if f != failures || e != errs || s != skipped {
			t.Errorf("%s: counts %d/%d/%d, elements %d/%d/%d", name, failures, errs, skipped, f, e, s)
		}
		if suTime+0.002 < sum {
			t.Errorf("%s: time %.3f < sum of its testcases %.3f", name, suTime, sum)
		}
		total["tests"] += tests
		total["failures"] += failures
		total["errors"] += errs
		total["skipped"] += skipped
	}
	if needInt(t, "testsuites tests", doc.Tests) != total["tests"] || needInt(t, "testsuites failures", doc.Failures) != total["failures"] ||
		needInt(t, "testsuites errors", doc.Errors) != total["errors"] || needInt(t, "testsuites skipped", doc.Skipped) != total["skipped"] {
		t.Errorf("testsuites totals disagree with the suites: %v", total)
	}
	needTime(t, "testsuites time", doc.Time)

	top, grp := doc.Suites[0], doc.Suites[1]
	if *top.Name != "kitrun" || *grp.Name != "grp" || len(grp.Cases) != 5 {
		t.Fatalf("suites %q (%d) and %q (%d)", *top.Name, len(top.Cases), *grp.Name, len(grp.Cases))
	}
	byName := map[string]xCase{}
	for _, c := range grp.Cases {
		byName[*c.Name] = c
	}
	fail := byName["grp/fail"]
	if fail.Failure == nil || !strings.Contains(*fail.Failure.Message, `console: 'never <&> "quoted"'`) && !strings.Contains(*fail.Failure.Message, `never <&> "quoted"`) {
		t.Errorf("failure element %+v", fail.Failure)
	}
	if !strings.Contains(fail.Failure.Text, "--- last console lines ---") {
		t.Errorf("failure text lacks the console: %q", fail.Failure.Text)
	}
	if fail.SystemOut == nil || !strings.Contains(*fail.SystemOut, "<xml> & co") {
		t.Errorf("system-out %v", fail.SystemOut)
	}
	if sk := byName["grp/skip"]; sk.Skipped == nil || *sk.Skipped.Message != "not here" {
		t.Errorf("skipped %+v", sk.Skipped)
	}
	if er := byName["grp/error"]; er.Error == nil || !strings.Contains(er.Error.Text, `unknown key "bogus"`) {
		t.Errorf("error %+v", er.Error)
	}
	fl := byName["grp/flaky"]
	if fl.Failure != nil || len(fl.Flaky) != 1 || !strings.Contains(fl.Flaky[0].StackTrace, "service other failed") {
		t.Errorf("flaky testcase %+v", fl)
	}
	if p := byName["grp/pass"]; p.Failure != nil || p.Error != nil || p.Skipped != nil || len(p.Flaky) != 0 {
		t.Errorf("passing testcase has problem elements: %+v", p)
	}
}

func TestCleanLine(t *testing.T) {
	for in, want := range map[string]string{
		"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16)": "SeaBIOS (version 1.16)",
		"kitinit: started\r":    "kitinit: started",
		"tab\there\x00bell\x07": "tab\therebell",
		"bad \xff utf8 é":       "bad  utf8 é",
		"\x1b]0;title\x07text":  "text",
	} {
		if got := CleanLine(in); got != want {
			t.Errorf("CleanLine(%q) = %q, want %q", in, got, want)
		}
	}
}
