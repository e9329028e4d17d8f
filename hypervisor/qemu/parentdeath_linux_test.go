package qemu_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/qemu"
)

// TestParentDeathNeedsAKeptThread: Linux sends the parent-death signal when
// the thread that forked the child exits. A child started the plain way
// from a goroutine whose thread then goes away (a locked goroutine that
// returns) dies with that thread; one started through StartLocked lives on.
func TestParentDeathNeedsAKeptThread(t *testing.T) {
	start := func(viaStartLocked bool) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
			if viaStartLocked {
				_, err := qemu.StartLocked(cmd)
				done <- err
				return
			}
			err := cmd.Start()
			done <- err
			if err == nil {
				go cmd.Wait()
			}
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		return cmd
	}
	alive := func(cmd *exec.Cmd) bool {
		time.Sleep(500 * time.Millisecond) // the thread's exit, and the signal, are asynchronous
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return len(f) > 0 && f[0] != "Z" && f[0] != "X"
	}
	if alive(start(false)) {
		t.Log("a child started from a retired thread survived: the hazard did not show here (the runtime kept the thread, or the kernel does not signal per thread)")
	}
	if !alive(start(true)) {
		t.Fatal("a child started through StartLocked died when the caller's thread went away")
	}
}
