package test_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/root"
	"github.com/kitrun/kitrun/testcases"
)

// A malformed test file fails its test before anything boots: the command
// prints the file:line:column message and the closing line, writes the
// reports, and exits with ExitTestsFailed.
func TestMalformedCaseExitsTestsFailed(t *testing.T) {
	tmp := t.TempDir()
	junit, js := filepath.Join(tmp, "r", "junit.xml"), filepath.Join(tmp, "r.json")
	var stdout, stderr bytes.Buffer
	code := root.Main([]string{"test", "../../../../testcases/testdata/malformed",
		"--results", filepath.Join(tmp, "results"), "--junit", junit, "--json", js}, &stdout, &stderr)
	if code != cmdutil.ExitTestsFailed {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, cmdutil.ExitTestsFailed, stdout.String(), stderr.String())
	}
	out := stdout.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "0 passed, 1 failed, 0 skipped" {
		t.Errorf("last line %q", last)
	}
	if !strings.Contains(out, "ERROR malformed (") || !strings.Contains(out, `test.yml:4:1: unknown key "lables" in test file; did you mean "labels"?`) {
		t.Errorf("stdout:\n%s", out)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	if _, err := os.Stat(junit); err != nil {
		t.Error(err)
	}
	s, err := testcases.ReadSummary(js)
	if err != nil || s.Failed != 1 || s.Results[0].Status != testcases.StatusError {
		t.Errorf("--json: %+v, %v", s, err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"test", "../../../../testcases/testdata/malformed", "-l", "a b"},
		{"test", "../../../../testcases/testdata/malformed", "--run", "[x"},
		{"test", "../../../../testcases/testdata/malformed", "-j", "0"},
		{"test", "../../../../testcases/testdata/malformed", "--mem-budget", "lots"},
		{"test", "../../../../testcases/testdata/malformed", "--arch", "sparc"},
		{"test", "no/such/dir"},
	} {
		var stdout, stderr bytes.Buffer
		if code := root.Main(args, &stdout, &stderr); code != cmdutil.ExitFailure || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
