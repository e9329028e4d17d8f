package procid

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	st, err := ParseStat([]byte("123 (qemu (x) y) S 1 123 123 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0"))
	if err != nil || st.State != 'S' || st.Start != 98765 {
		t.Fatalf("%+v %v", st, err)
	}
	for _, bad := range []string{"", "123 qemu S", "1 (x) S 1 2"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", bad)
		}
	}
}

func TestIDRoundTripAndKill(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(id.String())
	if err != nil || back != id {
		t.Fatalf("Parse(%q) = %v, %v", id, back, err)
	}
	// The same PID with another start time is another process.
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
	if (ID{PID: os.Getpid()}).Kill(time.Second) {
		t.Fatal("Kill must never signal kitrun itself")
	}
}
