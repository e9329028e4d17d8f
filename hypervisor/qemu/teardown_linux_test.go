package qemu_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/qemu"
)

// teardownHelperEnv makes the test binary the "kitrun" of
// TestTeardownKillNine: it starts a stand-in QEMU and waits to be killed.
const teardownHelperEnv = "KITRUN_TEST_TEARDOWN_HELPER"

// TestTeardownKillNine kills a process that starts a (stand-in) QEMU with
// SIGKILL at a random moment in the 20 ms from the start call (QEMU and
// the watchdog take a few ms to come up: before, during or after their
// setup), and requires that within 10 s nothing it started runs any more:
// not the QEMU, not the watchdog. Every mechanism this OS has is tried
// (KITRUN_TEARDOWN_TRIALS sets the count, default 10).
func TestTeardownKillNine(t *testing.T) {
	if os.Getenv(teardownHelperEnv) != "" {
		return // the helper's own run of this test
	}
	n := 10
	if v, err := strconv.Atoi(os.Getenv("KITRUN_TEARDOWN_TRIALS")); err == nil && v > 0 {
		n = v
	}
	for _, mode := range teardownModes() {
		t.Run(mode, func(t *testing.T) {
			left, up := 0, 0
			for i := range n {
				marker := fmt.Sprintf("%s-%d-%d", mode, os.Getpid(), i)
				helper := exec.Command(os.Args[0], "-test.run=^TestTeardownHelper$")
				helper.Env = append(os.Environ(), teardownHelperEnv+"="+marker, qemu.TeardownEnv+"="+mode)
				var out syncBuffer
				helper.Stdout, helper.Stderr = &out, &out
				if err := helper.Start(); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(30 * time.Second); !bytes.Contains(out.Bytes(), []byte("starting\n")); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("the helper did not get to start QEMU within 30s:\n%s", out.Bytes())
					}
				}
				time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
				helper.Process.Signal(syscall.SIGKILL)
				helper.Wait()
				if bytes.Contains(out.Bytes(), []byte("started\n")) {
					up++
				}
				if pids := waitNoneWith(marker, 10*time.Second); len(pids) > 0 {
					left++
					t.Errorf("trial %d: %d processes outlived the killed starter: %v\n%s", i, len(pids), pids, out.Bytes())
					for _, p := range pids {
						syscall.Kill(p, syscall.SIGKILL)
					}
				}
			}
			t.Logf("%s: %d trials (%d killed after the start call returned), %d left processes behind", mode, n, up, left)
		})
	}
}

// TestTeardownHelper is the starter TestTeardownKillNine kills: it starts
// a stand-in QEMU (sleep) the way Start does and waits.
func TestTeardownHelper(t *testing.T) {
	if os.Getenv(teardownHelperEnv) == "" {
		t.Skip("run by TestTeardownKillNine")
	}
	fmt.Println("starting")
	if _, _, _, err := qemu.StartQEMU(exec.Command("sleep", "600")); err != nil {
		t.Fatal(err)
	}
	fmt.Println("started")
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// waitNoneWith waits until no live process has marker in its environment
// (teardownHelperEnv's value), and returns those still there at timeout.
func waitNoneWith(marker string, timeout time.Duration) []int {
	want := []byte("\x00" + teardownHelperEnv + "=" + marker + "\x00")
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err != nil || !bytes.Contains(append([]byte{0}, env...), want) {
				continue
			}
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil || bytes.Contains(st, []byte(") Z ")) {
				continue
			}
			pids = append(pids, pid)
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
	}
}
