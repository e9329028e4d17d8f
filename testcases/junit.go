package testcases

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The JUnit XML that Jenkins, GitLab and Surefire read: one testsuite per
// group, one testcase per test (classname = group). A flaky test is a
// passed testcase with a flakyFailure per failed attempt, as Surefire writes
// reruns.

type junitSuites struct {
	XMLName   xml.Name     `xml:"testsuites"`
	Name      string       `xml:"name,attr"`
	Tests     int          `xml:"tests,attr"`
	Failures  int          `xml:"failures,attr"`
	Errors    int          `xml:"errors,attr"`
	Skipped   int          `xml:"skipped,attr"`
	Time      string       `xml:"time,attr"`
	Timestamp string       `xml:"timestamp,attr"`
	Suites    []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string          `xml:"name,attr"`
	Tests     int             `xml:"tests,attr"`
	Failures  int             `xml:"failures,attr"`
	Errors    int             `xml:"errors,attr"`
	Skipped   int             `xml:"skipped,attr"`
	Time      string          `xml:"time,attr"`
	Timestamp string          `xml:"timestamp,attr"`
	Hostname  string          `xml:"hostname,attr"`
	Props     *junitProps     `xml:"properties,omitempty"`
	Cases     []junitTestcase `xml:"testcase"`
}

type junitProps struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitTestcase struct {
	Name      string         `xml:"name,attr"`
	Classname string         `xml:"classname,attr"`
	Time      string         `xml:"time,attr"`
	File      string         `xml:"file,attr,omitempty"`
	Props     *junitProps    `xml:"properties,omitempty"`
	Failure   *junitProblem  `xml:"failure,omitempty"`
	Error     *junitProblem  `xml:"error,omitempty"`
	Skipped   *junitSkipped  `xml:"skipped,omitempty"`
	Flaky     []junitRerun   `xml:"flakyFailure,omitempty"`
	SystemOut *junitCharData `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitRerun struct {
	Message    string         `xml:"message,attr"`
	Type       string         `xml:"type,attr"`
	StackTrace *junitCharData `xml:"stackTrace,omitempty"`
}

type junitCharData struct {
	Text string `xml:",cdata"`
}

// xmlText makes text safe for XML 1.0 (which has no escape for most
// control characters) and for CDATA, line by line.
func xmlText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(CleanLine(l), "]]>", "]] >")
	}
	return strings.Join(lines, "\n")
}

// suiteName is the JUnit name of a group; top-level tests are in "kitrun".
func suiteName(group string) string {
	if group == "" {
		return "kitrun"
	}
	return group
}

func junitTime(d Seconds) string { return fmt.Sprintf("%.3f", time.Duration(d).Seconds()) }

// JUnit renders the summary as JUnit XML.
func JUnit(s *Summary) ([]byte, error) {
	host, _ := os.Hostname()
	arches := map[string]bool{}
	for _, r := range s.Results {
		arches[r.Arch] = true
	}
	multiArch := len(arches) > 1
	root := junitSuites{Name: "kitrun test", Time: junitTime(s.Duration), Timestamp: s.Started.Format("2006-01-02T15:04:05")}
	index := map[string]int{}
	var took []time.Duration
	for _, r := range s.Results {
		name := suiteName(r.Group)
		i, ok := index[name]
		if !ok {
			i = len(root.Suites)
			index[name] = i
			took = append(took, 0)
			root.Suites = append(root.Suites, junitSuite{Name: name, Hostname: host,
				Timestamp: r.Started.Format("2006-01-02T15:04:05")})
		}
		suite := &root.Suites[i]
		if r.Started.IsZero() {
			suite.Timestamp = s.Started.Format("2006-01-02T15:04:05")
		}
		tc := junitTestcase{Name: r.DisplayName(multiArch), Classname: name, Time: junitTime(r.Duration),
			File: filepath.Join(r.Dir, TestFileName)}
		// The node a test ran on: a property of the test case, and the
		// suite's hostname when all its tests ran on one node.
		if r.Node != "" {
			tc.Props = &junitProps{Props: []junitProp{{Name: "node", Value: r.Node}}}
			if suite.Tests == 0 {
				suite.Hostname = r.Node
			} else if suite.Hostname != r.Node {
				suite.Hostname = host
			}
		}
		switch r.Status {
		case StatusFailed:
			tc.Failure = &junitProblem{Message: xmlText(r.Message), Type: "failure", Text: xmlText(r.Detail)}
			suite.Failures++
		case StatusError:
			tc.Error = &junitProblem{Message: xmlText(r.Message), Type: "error", Text: xmlText(r.Detail)}
			suite.Errors++
		case StatusSkipped:
			tc.Skipped = &junitSkipped{Message: xmlText(r.Message)}
			suite.Skipped++
		case StatusFlaky:
			for _, at := range r.Attempts {
				if !at.Passed {
					tc.Flaky = append(tc.Flaky, junitRerun{Message: xmlText(firstLine(at.Error)), Type: "flaky",
						StackTrace: &junitCharData{Text: xmlText(at.Error)}})
				}
			}
		}
		if len(r.ConsoleTail) > 0 {
			tc.SystemOut = &junitCharData{Text: xmlText(strings.Join(r.ConsoleTail, "\n")) + "\n"}
		}
		suite.Tests++
		suite.Cases = append(suite.Cases, tc)
		took[i] += time.Duration(r.Duration)
	}
	for i := range root.Suites {
		su := &root.Suites[i]
		su.Time = junitTime(Seconds(took[i]))
		su.Props = &junitProps{Props: []junitProp{{Name: "results_dir", Value: s.ResultsDir}}}
		root.Tests += su.Tests
		root.Failures += su.Failures
		root.Errors += su.Errors
		root.Skipped += su.Skipped
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// WriteJUnit writes the summary as JUnit XML to path, atomically.
func WriteJUnit(path string, s *Summary) error {
	b, err := JUnit(s)
	if err != nil {
		return err
	}
	return writeResultFile(path, b)
}

// writeTestFiles writes a test's result.json and assertions.txt into its
// results directory.
func writeTestFiles(dir string, r *Result) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	errJSON := writeResultFile(filepath.Join(dir, "result.json"), append(js, '\n'))
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s in %s\n", r.Name, r.Status, r.Duration)
	if r.Detail != "" {
		fmt.Fprintf(&b, "%s\n", indent(r.Detail, "  "))
	}
	for _, at := range r.Attempts {
		fmt.Fprintf(&b, "\nattempt %d (repeat %d): passed=%v in %s, stage %s; console %s, events %s\n",
			at.Number, at.Repeat, at.Passed, at.Duration, at.Stage, at.Console, at.Events)
		for _, a := range at.Assertions {
			where := ""
			if a.Pos != "" {
				where = " (" + a.Pos + ")"
			}
			fmt.Fprintf(&b, "  %-8s %s%s [%s]\n", a.Outcome, a.Text, where, a.Duration)
			if a.Message != "" {
				fmt.Fprintf(&b, "%s\n", indent(a.Message, "           "))
			}
		}
	}
	return errors.Join(errJSON, writeResultFile(filepath.Join(dir, "assertions.txt"), []byte(b.String())))
}
