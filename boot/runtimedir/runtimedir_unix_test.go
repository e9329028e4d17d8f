//go:build unix

package runtimedir

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/procid"
)

func killTestGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

// TestBaseMustBeOurs: in a shared temporary directory anyone may have made
// the base first; kitrun refuses it instead of putting keys in it.
func TestBaseMustBeOurs(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "kitrun")
	os.Symlink(t.TempDir(), link)
	r := &root{base: link, self: procid.Self()}
	if _, err := r.Dir(); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symbolic link as base: %v", err)
	}
	loose := filepath.Join(dir, "loose")
	os.Mkdir(loose, 0o777)
	os.Chmod(loose, 0o777)
	r = &root{base: loose, self: procid.Self()}
	if _, err := r.Dir(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(loose); st.Mode().Perm() != 0o700 {
		t.Errorf("a base of ours open to others was left %v", st.Mode().Perm())
	}
	if os.Getuid() == 0 {
		foreign := filepath.Join(dir, "foreign")
		os.Mkdir(foreign, 0o700)
		os.Chown(foreign, 12345, 12345)
		r = &root{base: foreign, self: procid.Self()}
		if _, err := r.Dir(); err == nil || !strings.Contains(err.Error(), "belongs to uid 12345") {
			t.Errorf("another user's base: %v", err)
		}
	}
}

// TestGroupKill: a group whose members ignore SIGTERM still ends, record
// and all, and one that leaves nothing behind is empty at once.
func TestGroupKill(t *testing.T) {
	r := &root{base: filepath.Join(t.TempDir(), "kitrun"), self: procid.Self()}
	cmd := exec.Command("sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait")
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = out
	g, err := r.StartGroup(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer killTestGroup(cmd.Process.Pid)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	dir, _ := r.Dir()
	if got := readGroups(dir); len(got) != 1 || got[0].PID != cmd.Process.Pid {
		t.Fatalf("recorded groups %v, want the leader %d", got, cmd.Process.Pid)
	}
	if g.Empty() {
		t.Fatal("a running group is empty")
	}
	// Once the sleeper's pid is printed, SIGTERM is ignored by both.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := os.Stat(out.Name()); st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the group's command did not start")
		}
	}
	start := time.Now()
	g.Kill(200 * time.Millisecond)
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("Kill returned after %s: SIGTERM ended a group that ignores it", took)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader survived Kill")
	}
	if !g.Empty() {
		t.Error("the group is not empty after Kill")
	}
	if got := readGroups(dir); len(got) != 0 {
		t.Errorf("recorded groups after Kill: %v", got)
	}

	quick := exec.Command("true")
	g, err = r.StartGroup(quick)
	if err != nil {
		t.Fatal(err)
	}
	quick.Wait()
	if !g.Empty() {
		t.Error("the group of an exited command with no children is not empty")
	}
	g.Release()
}

// TestStartGroupRunsTheCommandUnchanged: behind the gate the command gets
// its own arguments, stdin and stdout.
func TestStartGroupRunsTheCommandUnchanged(t *testing.T) {
	r := &root{base: filepath.Join(t.TempDir(), "kitrun"), self: procid.Self()}
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sh", "-c", `printf '%s|' "$0" "$@"; cat`, "a b", "c")
	cmd.Stdin, cmd.Stdout = strings.NewReader("from stdin"), f
	g, err := r.StartGroup(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	g.Release()
	if b, _ := os.ReadFile(out); string(b) != "a b|c|from stdin" {
		t.Errorf("the command printed %q", b)
	}
}

// TestGateHoldsTheCommand: if the starter dies (or gives up) before the
// group is recorded, the command never runs.
func TestGateHoldsTheCommand(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command("touch", marker)
	release, err := gate(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release(false)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Errorf("a held command ended with %v, want exit status 125", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a held command ran")
	}
}
