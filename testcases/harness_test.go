package testcases

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestShippedCasesOnRealVMs runs the harness over some of the shipped cases
// on real VMs: an expected service failure, a published port, a guest that
// halts itself, and commands over SSH.
func TestShippedCasesOnRealVMs(t *testing.T) {
	qemutest.Require(t, "x86_64")
	names, err := ParseNameFilter("services/expected_failure,network/publish,lifecycle/halts_itself,ssh/exec")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s, err := Run(context.Background(), Options{
		Dir: "cases", Names: names, Parallel: 2, Arches: []string{"x86_64"},
		ResultsDir: t.TempDir(), Out: &lockedWriter{w: &out}, Launcher: &VMLauncher{Resources: hypervisor.Resources{Accel: "tcg"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kitrun test output:\n%s", out.String())
	if got := s.ClosingLine(); got != "4 passed, 0 failed, 0 skipped" {
		t.Fatalf("closing line %q", got)
	}
	for _, r := range s.Results {
		if len(r.Attempts) != 1 {
			t.Errorf("%s: %d attempts", r.Name, len(r.Attempts))
			continue
		}
		for _, a := range r.Attempts[0].Assertions {
			if a.Outcome != OutcomePassed {
				t.Errorf("%s: %s: %s %s", r.Name, a.Text, a.Outcome, a.Message)
			}
		}
		console, err := os.ReadFile(filepath.Join(s.ResultsDir, r.ResultsDir, "console.log"))
		if err != nil || !strings.Contains(string(console), "kitinit") {
			t.Errorf("%s: console.log %d bytes, %v", r.Name, len(console), err)
		}
	}
}

// TestBrokenCaseFailsUsefully runs the deliberately broken case and checks
// that its failure names the service, the probe, and shows the console.
func TestBrokenCaseFailsUsefully(t *testing.T) {
	qemutest.Require(t, "x86_64")
	var out strings.Builder
	s, err := Run(context.Background(), Options{
		Dir: "testdata/broken", Arches: []string{"x86_64"},
		ResultsDir: t.TempDir(), Out: &out, Launcher: &VMLauncher{Resources: hypervisor.Resources{Accel: "tcg"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.ClosingLine() != "0 passed, 1 failed, 0 skipped" || len(s.Results) != 1 {
		t.Fatalf("closing line %q\n%s", s.ClosingLine(), out.String())
	}
	r := s.Results[0]
	if r.Name != "broken" || r.Status != StatusFailed {
		t.Fatalf("%s: %s", r.Name, r.Status)
	}
	const msg = "boot failed: service hello failed: ready probe tcp 127.0.0.1:9999 did not succeed within 3s"
	if r.Message != msg {
		t.Errorf("message %q, want %q", r.Message, msg)
	}
	for _, want := range []string{
		"--- its last output ---\nhello: listening on [::]:8080", // the service's own output
		"--- last console lines ---",                             // and the console
		"kitinit: service hello started",
	} {
		if !strings.Contains(r.Detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, r.Detail)
		}
	}
	if as := r.Attempts[0].Assertions; as[1].Kind != KindServicesReady || as[1].Outcome != OutcomeNotRun {
		t.Errorf("assertions %+v", as)
	}
	if !strings.Contains(out.String(), "FAIL  broken (") {
		t.Errorf("output:\n%s", out.String())
	}
}
