//go:build unix

package runtimedir

import (
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
	g.Kill(200 * time.Millisecond)
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
