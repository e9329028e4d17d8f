//go:build linux

package procid

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestKillOnlyTheRecordedProcess: the same pid with another start time is
// another process, never killed; the recorded one is, whole group and all.
func TestKillOnlyTheRecordedProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	id := Of(cmd.Process.Pid)
	if back, ok := Parse(id.String()); !ok || back != id {
		t.Fatalf("Parse(%q) = %v, %v", id, back, ok)
	}
	other := ID{PID: id.PID, Start: id.Start + 1}
	if ok, why := other.Alive(); ok || why != "its pid now belongs to another process" {
		t.Fatalf("other start time: %v %q", ok, why)
	}
	if other.Kill(time.Second) {
		t.Fatal("killed a process with another start time")
	}
	if ok, _ := id.Alive(); !ok {
		t.Fatal("the process died from a mismatched kill")
	}
	if !id.Kill(5 * time.Second) {
		t.Fatal("Kill did not find the process")
	}
	if ok, why := id.Alive(); ok {
		t.Fatalf("still alive after Kill: %s", why)
	}
	if Self().Kill(time.Second) || (ID{PID: os.Getpid()}).Kill(time.Second) {
		t.Fatal("Kill must never signal this process")
	}
}
