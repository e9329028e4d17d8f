package testcases

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/procid"
)

// readPid reads a pid a group command wrote.
func readPid(t *testing.T, path string) procid.ID {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %q", path, b)
	}
	return procid.Of(pid)
}

// waitStopped waits (bounded) for a process to be gone.
func waitStopped(t *testing.T, id procid.ID, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); id.Running(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs", what, id.PID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGroupSetupWithDaemon: a setup that starts a background process
// returns when the setup command does (it used to wait for the background
// process, whose copy of the output pipe kept Wait waiting), the process
// runs while the group's tests do, and the teardown's end ends it.
func TestGroupSetupWithDaemon(t *testing.T) {
	dir := t.TempDir()
	results := t.TempDir()
	g := &Group{
		Name: "fixtures", Dir: dir, Timeout: 2 * time.Second, remaining: 1,
		// The daemon writes to the setup's output all the time, and
		// ignores SIGTERM: it must still go.
		Setup:    []string{"(trap '' TERM; while :; do echo tick; sleep 0.05; done) & echo $! > daemon.pid", "sleep 8 & echo $! > sleeper.pid; echo started"},
		Teardown: []string{"echo teardown"},
	}
	start := time.Now()
	if err := g.enter(context.Background(), results); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > g.Timeout+3*time.Second {
		t.Fatalf("setup returned after %s; its commands end at once (timeout %s)", took, g.Timeout)
	}
	daemon, sleeper := readPid(t, filepath.Join(dir, "daemon.pid")), readPid(t, filepath.Join(dir, "sleeper.pid"))
	if !daemon.Running() || !sleeper.Running() {
		t.Fatal("what setup started in the background did not survive the setup")
	}
	if err := g.leave(context.Background(), results); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, daemon, "the setup's daemon after teardown")
	waitStopped(t, sleeper, "the setup's sleeper after teardown")
	b, err := os.ReadFile(filepath.Join(results, "fixtures", "setup.log"))
	if err != nil || !strings.Contains(string(b), "$ sleep 8 & echo $! > sleeper.pid; echo started\n") || !strings.Contains(string(b), "started\n") {
		t.Errorf("setup.log: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(results, "fixtures", "teardown.log")); err != nil || string(b) != "$ echo teardown\nteardown\n" {
		t.Errorf("teardown.log: %q, %v", b, err)
	}
}

// TestGroupSetupTimeoutKillsTheGroup: at the deadline, the command and all
// it started are killed, whatever holds its output open.
func TestGroupSetupTimeoutKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	g := &Group{
		Name: "slow", Dir: dir, Timeout: time.Second, remaining: 1,
		Setup: []string{"sleep 300 & echo $! > child.pid; echo waiting; sleep 300"},
	}
	start := time.Now()
	err := g.enter(context.Background(), "")
	if took := time.Since(start); took > g.Timeout+3*time.Second {
		t.Fatalf("setup returned after %s, timeout %s", took, g.Timeout)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") || !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("err = %v", err)
	}
	waitStopped(t, readPid(t, filepath.Join(dir, "child.pid")), "the timed-out setup's child")
}

// TestGroupTeardownLeavesNothing: a teardown's background processes and a
// cancelled run's commands end with them.
func TestGroupTeardownLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	g := &Group{
		Name: "td", Dir: dir, Timeout: time.Minute, remaining: 1,
		Setup:    []string{"true"},
		Teardown: []string{"sleep 300 & echo $! > td.pid"},
	}
	if err := g.enter(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if err := g.leave(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, readPid(t, filepath.Join(dir, "td.pid")), "the teardown's child")

	ctx, cancel := context.WithCancel(context.Background())
	g = &Group{Name: "cancelled", Dir: dir, Timeout: time.Minute, remaining: 1,
		Setup: []string{"echo $$ > sh.pid; sleep 300"}}
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	err := g.enter(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "interrupted") || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled setup: %v after %s", err, time.Since(start))
	}
	waitStopped(t, readPid(t, filepath.Join(dir, "sh.pid")), "the cancelled setup")
}
