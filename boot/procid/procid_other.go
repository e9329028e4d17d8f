//go:build !linux

package procid

// startTime is unknown here: liveness rests on the pid alone.
func startTime(int) uint64 { return 0 }

func running(id ID) bool { return pidExists(id.PID) }

func pidReused(ID) bool { return false }
