//go:build unix

package runtimedir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/boot/procid"
)

const (
	sigTerm = unix.SIGTERM
	sigKill = unix.SIGKILL
)

// gate makes cmd wait, before it runs anything, until release(true): a
// shell started in its place reads a word from a pipe on an extra file
// descriptor, closes it and execs the command (same pid, arguments,
// stdin/stdout/stderr and other files). release(false), or the death of
// this process, closes the pipe without the word, and the shell exits 125
// without running the command.
func gate(cmd *exec.Cmd) (release func(run bool) error, err error) {
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	script := fmt.Sprintf(`IFS= read -r go <&%d; exec %d<&-; [ "$go" = go ] || exit 125; exec "$@"`, fd, fd)
	cmd.Args = append([]string{"sh", "-c", script, "kitrun-gate", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = sh
	return func(run bool) error {
		r.Close()
		var err error
		if run {
			_, err = io.WriteString(w, "go\n")
		}
		return errors.Join(err, w.Close())
	}, nil
}

func setNewGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// mayBeOurs says whether signalling leader's group cannot hit a stranger:
// while any member lives the kernel does not hand the group's number out
// again, so the group is ours unless another process holds the leader's
// pid. (The leader itself may be a zombie: its parent died before reaping
// it, and init has not yet.)
func mayBeOurs(leader procid.ID) bool {
	return leader.PID > 1 && !leader.PIDReused()
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
