package procid

import (
	"os"
	"time"
)

// Alive says whether the process id names still runs, and if not, why.
func (id ID) Alive() (bool, string) {
	switch {
	case id.PID <= 0:
		return false, "no pid recorded"
	case id.Running():
		return true, ""
	case id.PIDReused():
		return false, "its pid now belongs to another process"
	}
	return false, "not running"
}

// Kill sends SIGKILL to the process (to its whole process group when it
// leads one) if it still runs, and waits up to d for it to be gone. It
// reports whether it found the process running; it never signals this
// process, nor a process that has since taken the pid.
func (id ID) Kill(d time.Duration) bool {
	if id.PID == os.Getpid() || !id.Running() {
		return false
	}
	kill(id.PID)
	id.WaitGone(d)
	return true
}

// WaitGone waits up to d until the process no longer runs.
func (id ID) WaitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !id.Running() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
