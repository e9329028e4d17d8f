package childproc

import (
	"os/exec"
	"runtime"
)

// Start starts cmd as an owned child (Attr) and returns its Wait result.
// The start happens on an OS thread kept locked until the child is
// reaped: Linux sends the parent-death signal when the thread that forked
// the child exits, not the process, and the Go runtime may retire an
// unlocked thread at any time.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	cmd.SysProcAttr = Attr()
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// Kill kills what Start started, with its group where the OS has one; it
// does nothing for a command that never started.
func Kill(cmd *exec.Cmd) {
	if cmd.Process != nil {
		KillGroup(cmd.Process)
	}
}
