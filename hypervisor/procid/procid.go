// Package procid identifies a local process for as long as it lives: its
// PID together with its start time, so that a PID the kernel has handed to
// another process since is never mistaken for it (and never killed). The
// QEMU backend's machine IDs and the lifecycle supervisor's records are
// such IDs.
package procid

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ID is a process: its PID and its start time in clock ticks since the
// host booted (/proc/PID/stat field 22). Start 0 means unknown: any
// process with the PID matches.
type ID struct {
	PID   int
	Start uint64
}

// Of identifies the running process pid.
func Of(pid int) (ID, error) {
	st, err := ReadStat(pid)
	if err != nil {
		return ID{}, err
	}
	return ID{PID: pid, Start: st.Start}, nil
}

// String renders the ID as "PID:START".
func (id ID) String() string { return fmt.Sprintf("%d:%d", id.PID, id.Start) }

// Parse reads an ID written by String.
func Parse(s string) (ID, error) {
	p, st, ok := strings.Cut(s, ":")
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(st, 10, 64)
	if !ok || err1 != nil || err2 != nil || pid <= 0 {
		return ID{}, fmt.Errorf("bad process ID %q; want PID:START", s)
	}
	return ID{PID: pid, Start: start}, nil
}

// Stat is what kitrun reads of /proc/PID/stat.
type Stat struct {
	State byte   // R, S, D, Z, X, …
	Start uint64 // start time, clock ticks since boot
}

// ReadStat reads /proc/PID/stat. Tests may replace it.
var ReadStat = func(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// ParseStat reads state (field 3) and starttime (field 22). The command
// name (field 2) may hold spaces and parentheses: fields are counted after
// its last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errors.New("malformed /proc stat")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("malformed /proc stat: %v", err)
	}
	return Stat{State: f[0][0], Start: start}, nil
}

// Alive says whether the process still runs, and if not, why.
func (id ID) Alive() (bool, string) {
	if id.PID <= 0 {
		return false, "no pid recorded"
	}
	st, err := ReadStat(id.PID)
	if err != nil {
		return false, "not running"
	}
	if st.State == 'Z' || st.State == 'X' {
		return false, "exited"
	}
	if id.Start != 0 && st.Start != id.Start {
		return false, "its pid now belongs to another process"
	}
	return true, ""
}

// Kill sends SIGKILL to the process (and to its process group, when it
// leads one) if it still runs, and waits up to d for it to be gone. It
// reports whether it found the process alive; it never signals kitrun
// itself.
func (id ID) Kill(d time.Duration) bool {
	if id.PID == os.Getpid() {
		return false
	}
	if ok, _ := id.Alive(); !ok {
		return false
	}
	if pgid, err := unix.Getpgid(id.PID); err == nil && pgid == id.PID {
		unix.Kill(-id.PID, unix.SIGKILL)
	} else {
		unix.Kill(id.PID, unix.SIGKILL)
	}
	id.WaitGone(d)
	return true
}

// WaitGone waits up to d until the process no longer runs.
func (id ID) WaitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if ok, _ := id.Alive(); !ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
