//go:build unix

package runtimedir

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/boot/procid"
)

const (
	sigTerm = unix.SIGTERM
	sigKill = unix.SIGKILL
)

func setNewGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// mayBeOurs says whether signalling leader's group cannot hit a stranger:
// while any member lives the kernel does not hand the group's number out
// again, so the group is ours unless a process runs under the leader's pid
// that is not the leader.
func mayBeOurs(leader procid.ID) bool {
	if leader.PID <= 1 {
		return false
	}
	return unix.Kill(leader.PID, 0) != nil || leader.Running()
}

func signalGroup(leader procid.ID, sig unix.Signal) {
	if mayBeOurs(leader) {
		unix.Kill(-leader.PID, sig)
	}
}

func groupEmpty(leader procid.ID) bool {
	if !mayBeOurs(leader) {
		return true
	}
	if errors.Is(unix.Kill(-leader.PID, 0), unix.ESRCH) {
		return true
	}
	return !liveMembers(leader.PID)
}

// killGroup is the sweep's: a dead owner's group gets no grace.
func killGroup(leader procid.ID) { signalGroup(leader, sigKill) }
