package childproc

import (
	"os/exec"
	"runtime"
)

// Start starts cmd as an owned child (Attr) through StartLocked.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	cmd.SysProcAttr = Attr()
	return StartLocked(cmd)
}

// StartLocked starts cmd from an OS thread that is kept for it until the
// process is reaped, and returns the channel its Wait result arrives on.
//
// Linux delivers the parent-death signal (Pdeathsig) when the *thread* that
// forked the child exits, not the process. Go runs goroutines on threads it
// may retire at will (a goroutine that ends while locked to its thread takes
// the thread with it), so a child started from an arbitrary goroutine could
// be killed while its parent lives on — by a test that locks and releases
// threads, for instance. Here the forking thread stays until the child is
// gone; when the parent itself dies, the thread dies with it and the child
// follows. Elsewhere the locked thread costs nothing and changes nothing.
func StartLocked(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: once the child is reaped the thread may go.
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
