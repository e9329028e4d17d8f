//go:build linux

package kitinit

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reaper reaps every child of the process (PID 1, or a child subreaper in
// tests) and hands exit statuses to whoever started the child through it.
// Orphans re-parented to us are simply reaped.
//
// It is the only caller of wait in the process: nothing else may wait for
// children (no exec.Cmd.Wait, no os.Process.Wait), or the two race for
// statuses.
//
// A child that exits before its starter has registered it cannot be lost:
// Start forks and registers while holding the reaper's lock, and the reaper
// only looks up a reaped pid under that lock, so it blocks until registration
// is complete. This is why there is no map of "early" exits: such a map would
// also collect every orphan, grow without bound, and hand a stale status to a
// new child that happens to reuse an orphan's pid.
type Reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	sigs    chan os.Signal
}

var (
	sharedReaperOnce sync.Once
	sharedReaper     *Reaper
)

// SharedReaper returns the process's reaper, starting it on first use. There
// is one per process because it must see every SIGCHLD and every child.
func SharedReaper() *Reaper {
	sharedReaperOnce.Do(func() {
		r := &Reaper{
			waiters: map[int]chan unix.WaitStatus{},
			sigs:    make(chan os.Signal, 1),
		}
		signal.Notify(r.sigs, unix.SIGCHLD)
		go r.loop()
		sharedReaper = r
	})
	return sharedReaper
}

func (r *Reaper) loop() {
	for {
		r.reap()
		<-r.sigs
	}
}

// reap collects every child that has exited. SIGCHLDs coalesce, so it loops
// until there is nothing left; a child exiting after the last wait4 raises a
// new SIGCHLD, which the buffered channel keeps.
func (r *Reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		ch := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if ch != nil {
			ch <- ws // buffered: never blocks
		}
	}
}

// Start runs syscall.ForkExec and returns the child's pid and a channel that
// receives its wait status exactly once.
func (r *Reaper) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// exitCode is the event Status of a wait status: the exit code, or minus
// the signal number.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return -int(ws.Signal())
	}
	return ws.ExitStatus()
}

// describeExit says how a process ended, e.g. "exit status 3".
func describeExit(ws unix.WaitStatus) string {
	if ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		if name == "" {
			return "killed by signal " + itoa(int(ws.Signal()))
		}
		return "killed by " + name
	}
	return "exit status " + itoa(ws.ExitStatus())
}
