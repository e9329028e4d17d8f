package qemu

import (
	"os/exec"
	"runtime"
)

// startLocked starts cmd from an OS thread that is kept for it until the
// process is reaped, and returns the channel its Wait result arrives on.
//
// Linux delivers the parent-death signal (Pdeathsig) when the *thread* that
// forked the child exits, not the process. Go runs goroutines on threads it
// may retire at will (a goroutine that ends while locked to its thread takes
// the thread with it), so a QEMU started from an arbitrary goroutine could
// be killed while kitrun lives on — by a test that locks and releases
// threads, for instance. Here the forking thread stays until the child is
// gone; when kitrun itself dies, the thread dies with it and QEMU follows.
func startLocked(cmd *exec.Cmd) (<-chan error, error) {
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
