package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// QEMU must never outlive kitrun, even after kill -9, at any moment. Two
// mechanisms give that:
//
//   - pdeathsig (Linux, the default there): QEMU is started with a
//     parent-death signal from an OS thread kept until it is reaped
//     (teardown_linux.go, childproc.StartLocked).
//   - watchdog (every OS; the default where there is no parent-death
//     signal): kitrun re-executes itself as a tiny watchdog that starts
//     QEMU and holds the read end of a pipe whose only write end kitrun
//     holds. However kitrun ends, the kernel closes that end; the watchdog
//     reads EOF and kills QEMU. EOF persists, so a kitrun killed before
//     the watchdog has started QEMU is seen right after it has: there is no
//     window. The watchdog itself is kitrun's child and dies of the same
//     EOF.
//
// TeardownEnv selects one (so that the portable mechanism is exercised by
// the kill -9 trials on Linux too).
const TeardownEnv = "KITRUN_QEMU_TEARDOWN"

// Teardown mechanisms, TeardownEnv's values.
const (
	TeardownPdeathsig = "pdeathsig"
	TeardownWatchdog  = "watchdog"
)

// watchdogEnv marks the re-executed watchdog (see init).
const watchdogEnv = "KITRUN_QEMU_WATCHDOG"

// watchdogArg is the watchdog's first argument, for ps's sake.
const watchdogArg = "kitrun-qemu-watchdog"

// Any binary that imports this package (kitrun, a test binary using vmtest)
// can be its own watchdog: the re-executed process runs the watchdog
// before main and never returns.
func init() {
	if os.Getenv(watchdogEnv) == "1" && len(os.Args) > 1 && os.Args[1] == watchdogArg {
		os.Exit(runWatchdog(os.Args[2:]))
	}
}

// teardownMode is the mechanism in use: TeardownEnv, else the OS default.
func teardownMode() (string, error) {
	switch v := os.Getenv(TeardownEnv); v {
	case "":
		return defaultTeardown, nil
	case TeardownWatchdog:
		return v, nil
	case TeardownPdeathsig:
		if !havePdeathsig {
			return "", fmt.Errorf("%s=%s: this OS has no parent-death signal; valid: %s", TeardownEnv, v, TeardownWatchdog)
		}
		return v, nil
	default:
		valid := TeardownWatchdog
		if havePdeathsig {
			valid = TeardownPdeathsig + ", " + valid
		}
		return "", fmt.Errorf("%s=%s: unknown teardown mechanism; valid: %s", TeardownEnv, v, valid)
	}
}

// proc is a started QEMU.
type proc struct {
	// pid is QEMU's own process (under the watchdog too).
	pid int
	// waited delivers QEMU's end (through the watchdog's exit status).
	waited <-chan error
	// kill kills QEMU and whatever it started, now.
	kill func() error
}

// startQEMU starts cmd (QEMU) so that it cannot outlive this process.
// cmd.Stdout must be unset. QEMU runs in a process group of its own (a
// terminal's Ctrl-C reaches kitrun only; teardown is kitrun's to order).
func startQEMU(cmd *exec.Cmd) (*proc, error) {
	mode, err := teardownMode()
	if err != nil {
		return nil, err
	}
	if mode == TeardownPdeathsig {
		return startPdeathsig(cmd)
	}
	return startWatched(cmd)
}

// watchdogReportTimeout bounds the wait for the watchdog to report QEMU's
// pid: starting a process takes milliseconds even on a loaded host.
const watchdogReportTimeout = 30 * time.Second

func startWatched(cmd *exec.Cmd) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("qemu watchdog: finding kitrun's own binary: %w", err)
	}
	lifeline, held, err := os.Pipe() // kitrun keeps held; its end is the signal
	if err != nil {
		return nil, fmt.Errorf("qemu watchdog: %w", err)
	}
	report, reportW, err := os.Pipe()
	if err != nil {
		lifeline.Close()
		held.Close()
		return nil, fmt.Errorf("qemu watchdog: %w", err)
	}
	args := append([]string{watchdogArg, strconv.Itoa(len(cmd.ExtraFiles)), cmd.Path}, cmd.Args[1:]...)
	wd := exec.Command(self, args...)
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	wd.Env = append(env, watchdogEnv+"=1")
	wd.Stdin, wd.Stdout, wd.Stderr = lifeline, reportW, cmd.Stderr
	wd.ExtraFiles = cmd.ExtraFiles
	wd.Dir = cmd.Dir
	newGroup(wd)
	err = wd.Start()
	lifeline.Close()
	reportW.Close()
	if err != nil {
		held.Close()
		report.Close()
		return nil, fmt.Errorf("qemu watchdog: %w", err)
	}
	waited := make(chan error, 1)
	go func() {
		err := wd.Wait()
		// Only now: QEMU is gone (the watchdog waits for it).
		held.Close()
		waited <- err
	}()
	pid, err := readReport(report, watchdogReportTimeout)
	report.Close()
	if err != nil {
		killGroup(wd.Process, 0)
		if werr := <-waited; werr != nil {
			err = fmt.Errorf("%w (watchdog: %v)", err, werr)
		}
		return nil, fmt.Errorf("qemu watchdog: %w", err)
	}
	return &proc{pid: pid, waited: waited, kill: func() error { return killGroup(wd.Process, pid) }}, nil
}

// readReport reads the watchdog's one line: QEMU's pid.
func readReport(r *os.File, timeout time.Duration) (int, error) {
	type answer struct {
		pid int
		err error
	}
	got := make(chan answer, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			got <- answer{err: errors.New("exited before starting QEMU")}
			return
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 0 {
			got <- answer{err: fmt.Errorf("bad report %q", line)}
			return
		}
		got <- answer{pid: pid}
	}()
	select {
	case a := <-got:
		return a.pid, a.err
	case <-time.After(timeout):
		return 0, fmt.Errorf("no QEMU pid within %s", timeout)
	}
}

// runWatchdog is the watchdog process: args are the number of inherited
// files to pass on (fds 3…), QEMU's binary and its arguments. Its stdin is
// the lifeline, its stdout the report, its stderr QEMU's. It exits with
// QEMU's status.
func runWatchdog(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "qemu watchdog: usage: N-FILES QEMU ARGS...")
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "qemu watchdog: bad file count %q\n", args[0])
		return 2
	}
	// A write to the report pipe of a kitrun already gone must fail, not
	// kill the watchdog (SIGPIPE) and orphan QEMU.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	cmd := exec.Command(args[1], args[2:]...)
	for i := range n {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), "inherited"))
	}
	cmd.Stderr = os.Stderr
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, watchdogEnv+"=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "qemu watchdog: %v\n", err)
		return 127
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	attachQEMU(cmd.Process)
	go func() {
		// Nobody writes: this returns when every write end is closed,
		// i.e. when kitrun is gone or done.
		io.Copy(io.Discard, os.Stdin)
		cmd.Process.Kill()
	}()
	fmt.Fprintf(os.Stdout, "%d\n", cmd.Process.Pid)
	os.Stdout.Close()
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code >= 0 {
		return code
	}
	fmt.Fprintf(os.Stderr, "qemu: %v\n", err)
	return 128 + 9
}
