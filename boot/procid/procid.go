// Package procid owns the identity of a process across pid reuse: a pid
// together with the process's start time. Files and directories that a
// process leaves behind are named with its ID, so that a sweeper can tell
// the leftovers of a process that is gone from the work of one that runs,
// even when the kernel has since given the pid to someone else.
//
// The start time is known on Linux (/proc/PID/stat); elsewhere it is 0 and
// liveness rests on the pid alone, which errs on the side of keeping files.
package procid

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// ID identifies one process for the lifetime of the host's boot.
type ID struct {
	PID int
	// Start is the process's start time in clock ticks since boot; 0 when
	// unknown, in which case any process with PID counts as the owner.
	Start uint64
}

var self = sync.OnceValue(func() ID {
	pid := os.Getpid()
	return ID{PID: pid, Start: startTime(pid)}
})

// Self is this process's ID.
func Self() ID { return self() }

// Of returns the ID of the running process pid, with Start 0 if it cannot
// be read.
func Of(pid int) ID { return ID{PID: pid, Start: startTime(pid)} }

// String is "PID-START", the form Parse reads and file names carry.
func (id ID) String() string {
	return strconv.Itoa(id.PID) + "-" + strconv.FormatUint(id.Start, 10)
}

// Parse reads "PID-START" (START may be 0).
func Parse(s string) (ID, bool) {
	p, st, ok := strings.Cut(s, "-")
	if !ok {
		return ID{}, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 || p != strconv.Itoa(pid) {
		return ID{}, false
	}
	start, err := strconv.ParseUint(st, 10, 64)
	if err != nil || st != strconv.FormatUint(start, 10) {
		return ID{}, false
	}
	return ID{PID: pid, Start: start}, true
}

// Running says whether the process id names still runs: a process with
// that pid exists, is not a zombie, and (when both are known) started at
// the recorded time. A process of another user counts as running.
func (id ID) Running() bool {
	if id.PID <= 0 {
		return false
	}
	if id == Self() {
		return true
	}
	return running(id)
}

// PIDReused says whether id's pid now belongs to another process: one that
// exists (running, or exited and not yet reaped) with another start time.
// It is false when the pid is free, when id's own process holds it, and
// when start times are unknown.
func (id ID) PIDReused() bool {
	if id.PID <= 0 || id.Start == 0 {
		return false
	}
	return pidReused(id)
}
