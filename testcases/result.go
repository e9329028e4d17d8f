package testcases

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
)

// Status is a test's outcome.
type Status string

const (
	StatusPassed  Status = "passed"
	StatusFlaky   Status = "flaky" // passed, but only on a retry
	StatusFailed  Status = "failed"
	StatusError   Status = "error" // malformed test, invalid spec, failed build or group setup: never retried
	StatusSkipped Status = "skipped"
)

// Passed says whether the status counts as passed (flaky does).
func (s Status) Passed() bool { return s == StatusPassed || s == StatusFlaky }

// Assertion outcomes.
const (
	OutcomePassed = "passed"
	OutcomeFailed = "failed"
	OutcomeNotRun = "not run"
)

// Seconds is a duration that reads and writes as seconds in JSON.
type Seconds time.Duration

// MarshalJSON writes seconds with millisecond precision.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(s).Seconds(), 'f', 3, 64)), nil
}

// UnmarshalJSON reads seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*s = Seconds(f * float64(time.Second))
	return nil
}

func (s Seconds) String() string { return time.Duration(s).Round(100 * time.Millisecond).String() }

// Result is the outcome of one test (one case on one arch).
type Result struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	Arch  string `json:"arch"`
	Dir   string `json:"dir"`
	// Node is the machine the test ran on (a Slurm node's name, else the
	// hostname); empty in results from before the field.
	Node    string   `json:"node,omitempty"`
	Summary string   `json:"summary,omitempty"`
	Labels  []string `json:"labels"`
	Status  Status   `json:"status"`
	// Message is why the test failed or was skipped; Detail its full text.
	Message  string    `json:"message,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Duration Seconds   `json:"duration"`
	Started  time.Time `json:"started"`
	// ResultsDir holds the test's logs (console.log, events.log,
	// result.json), relative to the run's results directory.
	ResultsDir  string    `json:"results_dir,omitempty"`
	Attempts    []Attempt `json:"attempts,omitempty"`
	ConsoleTail []string  `json:"console_tail,omitempty"`
}

// DisplayName is the name with the arch when the run covers several.
func (r *Result) DisplayName(multiArch bool) string {
	if multiArch {
		return r.Name + " [" + r.Arch + "]"
	}
	return r.Name
}

// Attempt is one boot of a test.
type Attempt struct {
	Number int `json:"number"`
	// Repeat is which of the test's `repeat:` runs this was.
	Repeat   int     `json:"repeat"`
	Passed   bool    `json:"passed"`
	Error    string  `json:"error,omitempty"`
	Stage    string  `json:"stage,omitempty"`
	Duration Seconds `json:"duration"`
	// Snapshot says how the machine started where the launcher has
	// snapshots: "restored", "built, restored", "cold: WHY".
	Snapshot string `json:"snapshot,omitempty"`
	// Console and Events name its logs in the test's results directory.
	Console    string            `json:"console,omitempty"`
	Events     string            `json:"events,omitempty"`
	Assertions []AssertionResult `json:"assertions"`
	// errorKind marks attempts that failed before booting (StatusError).
	errorKind   bool
	consoleTail []string
}

// AssertionResult is one assertion's outcome in an attempt.
type AssertionResult struct {
	Kind     string  `json:"kind"`
	Text     string  `json:"text"`
	Pos      string  `json:"pos,omitempty"`
	Implicit bool    `json:"implicit,omitempty"`
	Outcome  string  `json:"outcome"`
	Message  string  `json:"message,omitempty"`
	Duration Seconds `json:"duration"`
}

// Summary is a whole run.
type Summary struct {
	Schema     int       `json:"schema"`
	Dir        string    `json:"dir"`
	ResultsDir string    `json:"results_dir"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Duration   Seconds   `json:"duration"`
	Passed     int       `json:"passed"` // flaky included
	Failed     int       `json:"failed"` // errors included
	Skipped    int       `json:"skipped"`
	Flaky      int       `json:"flaky"`
	// Interrupted: the run was cancelled; tests not finished are skipped.
	Interrupted bool `json:"interrupted,omitempty"`
	// GroupErrors are failed group teardowns (setups fail their tests).
	GroupErrors []string  `json:"group_errors,omitempty"`
	Results     []*Result `json:"tests"`
}

// OK says whether the run passed as a whole.
func (s *Summary) OK() bool { return s.Failed == 0 && len(s.GroupErrors) == 0 && !s.Interrupted }

// ClosingLine is the last line a run prints.
func (s *Summary) ClosingLine() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", s.Passed, s.Failed, s.Skipped)
}

func (s *Summary) count() {
	s.Passed, s.Failed, s.Skipped, s.Flaky = 0, 0, 0, 0
	for _, r := range s.Results {
		switch r.Status {
		case StatusPassed:
			s.Passed++
		case StatusFlaky:
			s.Passed++
			s.Flaky++
		case StatusSkipped:
			s.Skipped++
		default:
			s.Failed++
		}
	}
}

// WriteJSON writes the summary to path atomically.
func (s *Summary) WriteJSON(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeResultFile(path, append(b, '\n'))
}

// ReadSummary reads a summary written by WriteJSON.
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &s, nil
}

// writeResultFile writes one of the run's result files, atomically and
// durably, making its directory when missing.
func writeResultFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}
