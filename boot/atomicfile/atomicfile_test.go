package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/procid"
)

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("got %q, %v", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	assertOnly(t, dir, "f.json")
}

func TestFailedFillKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFrom(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "old" {
		t.Fatalf("destination changed to %q", b)
	}
	assertOnly(t, dir, "f")
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), nil, 0o644); err == nil {
		t.Fatal("want an error")
	}
}

func TestCreateAbortCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "disk.img")
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final name visible before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // no-op after Commit
	st, err := os.Stat(p)
	if err != nil || st.Size() != 1<<20+1 {
		t.Fatalf("stat %v %v", st, err)
	}
	g, _ := Create(p, 0o644)
	g.Write([]byte("partial"))
	g.Abort()
	if st2, _ := os.Stat(p); st2.Size() != st.Size() {
		t.Fatal("Abort touched the destination")
	}
	assertOnly(t, dir, "disk.img")
}

func TestSweepStale(t *testing.T) {
	dir := t.TempDir()
	self := procid.Self()
	// A dead owner: pid numbers above pid_max never run.
	dead := filepath.Join(dir, ".x.tmp-99999999-5-123")
	legacyDead := filepath.Join(dir, ".w.tmp-99999999-123") // PID-RANDOM, before start times
	mine := filepath.Join(dir, ".y.tmp-"+self.String()+"-456")
	legacyMine := filepath.Join(dir, ".v.tmp-"+strconv.Itoa(self.PID)+"-456")
	other := filepath.Join(dir, "z.tmp-99999999-1-1") // not hidden: not ours
	for _, p := range []string{dead, legacyDead, mine, legacyMine, other} {
		os.WriteFile(p, nil, 0o644)
	}
	// A directory of a process that had this pid before us (pid reuse).
	reused := filepath.Join(dir, ".d.tmp-"+procid.ID{PID: self.PID, Start: self.Start + 1}.String()+"-789")
	os.MkdirAll(filepath.Join(reused, "sub"), 0o700)
	removed, err := SweepStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{reused, legacyDead, dead}
	if runtime.GOOS != "linux" { // no start times: the pid alone decides
		want = []string{legacyDead, dead}
	}
	if !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, p := range []string{mine, legacyMine, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s swept: %v", p, err)
		}
	}
}

func TestFirstWriteSweepsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, ".out.tmp-99999999-5-123")
	os.WriteFile(dead, []byte("half"), 0o644)
	d, err := TempDir(filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 || !strings.HasPrefix(filepath.Base(d), ".img.tmp-"+procid.Self().String()+"-") {
		t.Fatalf("MkdirTemp: %s %v %v", d, st, err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dead process's temp file survived the first write: %v", err)
	}
	if err := Write(filepath.Join(dir, "out"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(d)
	assertOnly(t, dir, "out")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("dir holds %v, want %v", got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("dir holds %v, want %v", got, names)
		}
	}
}

func TestTempDirIsSweptAfterItsOwner(t *testing.T) {
	dir := t.TempDir()
	tmp, err := TempDir(filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	owner, ok := tempOwner(filepath.Base(tmp))
	if !ok || owner != procid.Self() {
		t.Fatalf("%s: owner %v %v, want this process", tmp, owner, ok)
	}
	if err := Write(filepath.Join(tmp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if removed, _ := SweepStale(dir); len(removed) != 0 {
		t.Fatalf("swept a live process's directory: %v", removed)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "img")); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "img")
}

func TestTempOf(t *testing.T) {
	for name, want := range map[string]string{
		".initrd.img.tmp-12-345":     "initrd.img",
		".initrd.img.tmp-12-345-678": "initrd.img",
		".a.tmp-b.tmp-1-2":           "a.tmp-b",
		"initrd.img":                 "",
		".initrd.img.tmp-x-1":        "",
		"..tmp-1-2":                  "",
		".tmp-1-2":                   "",
	} {
		got, ok := TempOf(name)
		if got != want || ok != (want != "") {
			t.Errorf("TempOf(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}
