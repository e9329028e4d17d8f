package vm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// prune removes unused snapshots past SnapshotKeep, and nothing else: not
// the one in use, not recent ones, not other files.
func TestSnapshotPrune(t *testing.T) {
	s := &Snapshots{Dir: t.TempDir()}
	key := func(c string) string { return strings.Repeat(c, 64) }
	old := time.Now().Add(-SnapshotKeep - time.Hour)
	for _, k := range []string{key("a"), key("b"), key("c"), "not-a-key"} {
		d := filepath.Join(s.Dir, k)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, metaFile), []byte("{}"), 0o644)
		if k != key("c") {
			os.Chtimes(d, old, old)
		}
	}
	s.prune(key("a"))
	for k, want := range map[string]bool{key("a"): true, key("b"): false, key("c"): true, "not-a-key": true} {
		_, err := os.Stat(filepath.Join(s.Dir, k))
		if got := err == nil; got != want {
			t.Errorf("%.8s: present %v, want %v", k, got, want)
		}
	}
}

// A snapshot whose meta.json is missing, names another key or whose file
// changed is refused with the reason; none at all is fs.ErrNotExist.
func TestCheckSnapshot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "k")
	if err := checkSnapshot(dir, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no snapshot: %v", err)
	}
	os.MkdirAll(dir, 0o755)
	if err := checkSnapshot(dir, "k"); err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no meta.json") {
		t.Errorf("no meta.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "state"), []byte("state"), 0o600)
	c, _ := checkFile(filepath.Join(dir, "state"))
	writeMeta := func(key string) {
		b := []byte(`{"key":"` + key + `","files":{"state":{"size":` + itoa(int(c.Size)) + `,"sha256":"` + c.SHA256 + `"}}}`)
		os.WriteFile(filepath.Join(dir, metaFile), b, 0o644)
	}
	writeMeta("other")
	if err := checkSnapshot(dir, "k"); err == nil || !strings.Contains(err.Error(), "made for key other") {
		t.Errorf("other key: %v", err)
	}
	writeMeta("k")
	if err := checkSnapshot(dir, "k"); err != nil {
		t.Errorf("whole snapshot: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "state"), []byte("stale"), 0o600)
	if err := checkSnapshot(dir, "k"); err == nil || !strings.Contains(err.Error(), "state is damaged") {
		t.Errorf("changed state: %v", err)
	}
	os.Remove(filepath.Join(dir, "state"))
	if err := checkSnapshot(dir, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing state: %v (must not read as no snapshot)", err)
	}
}
