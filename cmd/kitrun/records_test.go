package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A machine that does not die with kitrun (a cloud instance, a Hyper-V
// VM) is recorded in kitrun's runtime directory; after kill -9 the next
// kitrun start destroys it. These two helpers are the two halves of that
// check, shared by the backends' CLI tests.

// killedAtReady starts `kitrun ARGS` with a runtime directory of its own,
// waits for all-ready on its output (5 minutes at most) and kills it with
// SIGKILL. It returns the environment the next start must run in to find
// the records: the same runtime directory.
func killedAtReady(t *testing.T, bin string, args ...string) (env []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "XDG_RUNTIME_DIR=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "all-ready") {
				ready <- true
				io.Copy(io.Discard, out)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("kitrun %s ended before all-ready", strings.Join(args, " "))
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("kitrun %s: no all-ready within 5 minutes", strings.Join(args, " "))
	}
	return cmd.Env
}

// nextStart is the next kitrun start in env (a `kitrun ps`, which reaps
// what killed processes left behind before it lists).
func nextStart(t *testing.T, bin string, env []string) {
	t.Helper()
	next := exec.Command(bin, "ps", "--state-dir", t.TempDir())
	next.Env = env
	if b, err := next.CombinedOutput(); err != nil {
		t.Fatalf("the next kitrun start: %v\n%s", err, b)
	}
}
