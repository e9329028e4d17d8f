package qemu

import (
	"errors"
	"github.com/kitrun/kitrun/internal/childproc"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	havePdeathsig   = true
	defaultTeardown = TeardownPdeathsig
)

// startPdeathsig starts QEMU with a parent-death signal, from a thread
// kept for it (childproc.StartLocked), in a group of its own.
func startPdeathsig(cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	waited, err := childproc.StartLocked(cmd)
	if err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	return &proc{pid: pid, waited: waited, kill: func() error {
		// The whole group: QEMU may have helpers.
		if err := unix.Kill(-pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
		return nil
	}}, nil
}
