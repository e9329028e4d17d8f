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

// stat reads state (field 3) and starttime (field 22) of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses: fields are
// counted after its last ')'.
func stat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc stat: %v", err)
	}
	return f[0][0], start, nil
}

func startTime(pid int) uint64 {
	_, start, err := stat(pid)
	if err != nil {
		return 0
	}
	return start
}

func running(id ID) bool {
	state, start, err := stat(id.PID)
	if err != nil {
		// No /proc entry: gone, unless /proc hides other users' processes
		// (hidepid) or is not mounted; kill(0) tells those apart.
		kerr := unix.Kill(id.PID, 0)
		return kerr == nil || errors.Is(kerr, unix.EPERM)
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return id.Start == 0 || start == id.Start
}
