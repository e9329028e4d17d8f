package lifecycle

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/procid"
)

// procStat is what kitrun reads of /proc/PID/stat.
type procStat = procid.Stat

// system is the host as the truth-finding sees it; tests replace it.
type system struct {
	stat   func(pid int) (procStat, error)
	bootID func() string
	now    func() time.Time
}

var host = system{stat: readProcStat, bootID: readBootID, now: time.Now}

func readProcStat(pid int) (procStat, error) { return procid.ReadStat(pid) }

// ProcStart is the start time of a process (0 if unknown).
func ProcStart(pid int) uint64 {
	st, err := readProcStat(pid)
	if err != nil {
		return 0
	}
	return st.Start
}

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// alive says whether pid is still the process that had start time start
// (0: not recorded, any process will do), and if not, why.
func (sys system) alive(pid int, start uint64) (bool, string) {
	if pid <= 0 {
		return false, "no pid recorded"
	}
	st, err := sys.stat(pid)
	if err != nil {
		return false, "not running"
	}
	if st.State == 'Z' || st.State == 'X' {
		return false, "exited"
	}
	if start != 0 && st.Start != start {
		return false, "its pid now belongs to another process"
	}
	return true, ""
}

// RSS is the resident memory of pid in bytes (0 if unknown).
func RSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				kb, _ := strconv.ParseInt(fs[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// killVerified sends SIGKILL to pid if it is still the process recorded,
// and waits up to d for it to be gone.
func killVerified(pid int, start uint64, d time.Duration) bool {
	if pid == os.Getpid() {
		return false
	}
	if ok, _ := host.alive(pid, start); !ok {
		return false
	}
	sigkill(pid)
	waitGone(pid, start, d)
	return true
}

// waitGone waits until pid is no longer the recorded process.
func waitGone(pid int, start uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if ok, _ := host.alive(pid, start); !ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
