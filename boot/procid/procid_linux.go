package procid

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procStat is what procid reads of /proc/PID/stat.
type procStat struct {
	state byte   // field 3: R, S, D, Z, X, …
	pgrp  int    // field 5
	start uint64 // field 22, clock ticks since boot
}

func stat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat counts fields after the last ')': the command name (field 2)
// may hold spaces and parentheses.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: %v", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: %v", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// Stat is what a /proc/PID/stat says of a process's state and start.
type Stat struct {
	State byte   // R, S, D, Z, X, …
	Start uint64 // clock ticks since boot
}

// ReadStat reads a process's state and start time.
func ReadStat(pid int) (Stat, error) {
	st, err := stat(pid)
	return Stat{State: st.state, Start: st.start}, err
}

func startTime(pid int) uint64 {
	st, err := stat(pid)
	if err != nil {
		return 0
	}
	return st.start
}

// GroupHasLiveMembers says whether any process of process group pgid has
// not exited. Unlike kill(-pgid, 0) it does not count zombies, which an
// init that reaps orphans slowly can leave for seconds.
func GroupHasLiveMembers(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return unix.Kill(-pgid, 0) == nil
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := stat(pid); err == nil && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

func running(id ID) bool {
	st, err := stat(id.PID)
	if err != nil {
		// No /proc entry: gone, unless /proc hides other users' processes
		// (hidepid) or is not mounted; kill(0) tells those apart.
		kerr := unix.Kill(id.PID, 0)
		return kerr == nil || errors.Is(kerr, unix.EPERM)
	}
	if st.state == 'Z' || st.state == 'X' {
		return false
	}
	return id.Start == 0 || st.start == id.Start
}

func pidReused(id ID) bool {
	st, err := stat(id.PID)
	return err == nil && st.start != id.Start
}
