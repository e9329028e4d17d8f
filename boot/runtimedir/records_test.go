package runtimedir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/procid"
)

// TestRecordsOfADeadProcess: what a process killed with SIGKILL recorded
// (machines on a backend that outlive it, in kitrun) is ended by the next
// sweep through the kind's reaper. Its directory goes only once every
// record is ended: a kind nobody here can end, or a reap that fails,
// keeps it, and the sweep says so.
func TestRecordsOfADeadProcess(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv(childRecordsEnv, "1")
	dead := startChild(t, xdg, t.TempDir())
	dead.cmd.Process.Kill()
	dead.cmd.Wait()
	if dead.daemon > 0 {
		killTestGroup(dead.daemon)
	}
	next := &root{base: filepath.Join(xdg, "kitrun"), self: procid.Self()}

	// No reaper for widgets in this process: nothing is lost.
	if _, err := next.Sweep(); err == nil || !strings.Contains(err.Error(), "2 widget record(s) and nothing here to end them") {
		t.Errorf("sweep without a reaper: %v", err)
	}
	if _, err := os.Stat(dead.dir); err != nil {
		t.Fatalf("the directory with unended records went: %v", err)
	}

	// A reaper that ends w1 but not w2.
	var seen []string
	RegisterReaper("widget", func(recs [][]byte) ([][]byte, error) {
		var left [][]byte
		for _, r := range recs {
			seen = append(seen, string(r))
			if string(r) == "w2" {
				left = append(left, r)
			}
		}
		return left, errors.New("w2 is unreachable")
	})
	t.Cleanup(func() { RegisterReaper("widget", nil) })
	if _, err := next.Sweep(); err == nil || !strings.Contains(err.Error(), "w2 is unreachable") {
		t.Errorf("sweep with a failing reap: %v", err)
	}
	slices.Sort(seen)
	if strings.Join(seen, ",") != "w1,w2" {
		t.Errorf("the reaper saw %v", seen)
	}
	if _, err := os.Stat(dead.dir); err != nil {
		t.Fatalf("the directory with an unended record went: %v", err)
	}

	// Then w2 is ended too: only it is offered, and the directory goes.
	seen = nil
	RegisterReaper("widget", func(recs [][]byte) ([][]byte, error) {
		for _, r := range recs {
			seen = append(seen, string(r))
		}
		return nil, nil
	})
	removed, err := next.Sweep()
	if err != nil || !slices.Contains(removed, dead.dir) || strings.Join(seen, ",") != "w2" {
		t.Errorf("last sweep: removed %v, %v; reaper saw %v", removed, err, seen)
	}
	if _, err := os.Stat(dead.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead process's directory is still there: %v", err)
	}
}

// TestRecordForget: a forgotten record is gone at once, and a live
// process's records are never reaped.
func TestRecordForget(t *testing.T) {
	base := filepath.Join(t.TempDir(), "kitrun")
	r := &root{base: base, self: procid.Self()}
	forget, err := r.Record("widget", []byte("mine"))
	if err != nil {
		t.Fatal(err)
	}
	RegisterReaper("widget", func([][]byte) ([][]byte, error) {
		t.Error("a live process's record was reaped")
		return nil, nil
	})
	t.Cleanup(func() { RegisterReaper("widget", nil) })
	if _, err := r.Sweep(); err != nil {
		t.Error(err)
	}
	dir, _ := r.Dir()
	kd := filepath.Join(dir, recordsDir, "widget")
	if ents, _ := os.ReadDir(kd); len(ents) != 1 {
		t.Fatalf("%d records, want 1", len(ents))
	}
	if err := forget(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(kd); len(ents) != 0 {
		t.Errorf("%d records after forget", len(ents))
	}
	if _, err := r.Record("../x", nil); err == nil {
		t.Error("a kind that leaves the records directory was accepted")
	}
}
