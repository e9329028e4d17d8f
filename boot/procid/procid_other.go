//go:build !linux

package procid

import "errors"

// startTime is unknown here: liveness rests on the pid alone.
func startTime(int) uint64 { return 0 }

func running(id ID) bool { return pidExists(id.PID) }

func pidReused(ID) bool { return false }

// Stat is what a /proc/PID/stat says of a process's state and start.
type Stat struct {
	State byte
	Start uint64
}

// ReadStat needs /proc: here it always fails.
func ReadStat(pid int) (Stat, error) { return Stat{}, errors.ErrUnsupported }
