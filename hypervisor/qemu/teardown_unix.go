//go:build unix

package qemu

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// newGroup puts the watchdog (and so QEMU) in a process group of its own.
func newGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills the watchdog's group: the watchdog, QEMU and QEMU's
// helpers.
func killGroup(watchdog *os.Process, qemuPID int) error {
	if err := unix.Kill(-watchdog.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// attachQEMU: on unix, the process group is all the watchdog needs.
func attachQEMU(*os.Process) {}
