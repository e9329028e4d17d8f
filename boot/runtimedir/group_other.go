//go:build !unix

package runtimedir

import (
	"os"
	"os/exec"

	"github.com/kitrun/kitrun/boot/procid"
)

// Without process groups, a group is its leader alone.
const (
	sigTerm = 0
	sigKill = 1
)

func setNewGroup(*exec.Cmd) {}

// gate: without process groups to record, the command starts at once.
func gate(cmd *exec.Cmd) (func(bool) error, error) {
	return func(run bool) error {
		if !run && cmd.Process != nil {
			cmd.Process.Kill()
		}
		return nil
	}, nil
}

func signalGroup(leader procid.ID, _ int) {
	if !leader.Running() {
		return
	}
	if p, err := os.FindProcess(leader.PID); err == nil {
		p.Kill()
		p.Release()
	}
}

func groupEmpty(leader procid.ID) bool { return !leader.Running() }

func killGroup(leader procid.ID) { signalGroup(leader, sigKill) }
