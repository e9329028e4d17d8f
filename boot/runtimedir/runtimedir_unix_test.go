//go:build unix

package runtimedir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kitrun/kitrun/boot/procid"
)

func newGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

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
