package procid

import (
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestSelfRuns(t *testing.T) {
	id := Self()
	if !id.Running() {
		t.Fatalf("%v: this process does not count as running", id)
	}
	if runtime.GOOS == "linux" && id.Start == 0 {
		t.Fatal("no start time on Linux")
	}
	if got, ok := Parse(id.String()); !ok || got != id {
		t.Fatalf("Parse(%q) = %v, %v", id.String(), got, ok)
	}
}

func TestExitedChildIsNotRunning(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id := Of(cmd.Process.Pid)
	if !id.Running() {
		t.Fatalf("%v: the child does not count as running", id)
	}
	cmd.Process.Kill()
	// Before Wait the child becomes a zombie: not running either.
	deadline := time.Now().Add(10 * time.Second)
	for id.Running() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if id.Running() {
		t.Errorf("%v: a killed, unreaped child counts as running", id)
	}
	cmd.Wait()
	if id.Running() {
		t.Errorf("%v: a reaped child counts as running", id)
	}
}

func TestReusedPidIsNotTheOwner(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("start times are known only on Linux")
	}
	// This pid with another start time: a process that had our pid before.
	id := Self()
	id.Start++
	if id.Running() {
		t.Fatalf("%v: a different start time counts as the owner", id)
	}
	id.Start = 0 // unknown: the pid alone decides
	if !id.Running() {
		t.Fatalf("%v: an unknown start time with a live pid does not count", id)
	}
}

func TestParse(t *testing.T) {
	for s, want := range map[string]ID{"12-345": {12, 345}, "1-0": {1, 0}} {
		if got, ok := Parse(s); !ok || got != want {
			t.Errorf("Parse(%q) = %v, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "12", "-1-2", "0-5", "12-", "a-1", "012-3", "1-+2", "1-2-3"} {
		if got, ok := Parse(s); ok {
			t.Errorf("Parse(%q) = %v, want no ID", s, got)
		}
	}
}

func TestPIDReused(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id := Of(cmd.Process.Pid)
	// Exited but not reaped: still its own pid.
	time.Sleep(100 * time.Millisecond)
	if id.PIDReused() {
		t.Errorf("%v: an unreaped child's pid counts as reused", id)
	}
	cmd.Wait()
	if id.PIDReused() {
		t.Errorf("%v: a free pid counts as reused", id)
	}
	if runtime.GOOS == "linux" {
		other := Self()
		other.Start++
		if !other.PIDReused() {
			t.Errorf("%v: this process's pid with another start time does not count as reused", other)
		}
	}
}
