//go:build !unix

package kitsshd

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
)

// Off unix, kitsshd serves only Config.Exec (the host's fake backend):
// running programs is for the Linux guest.

type winsize struct{ cols, rows, xpix, ypix uint32 }

var errNoPrograms = errors.New("kitsshd runs programs on unix only, not on " + runtime.GOOS)

func newWinsize(cols, rows, xpix, ypix uint32) *winsize {
	return &winsize{cols, rows, xpix, ypix}
}

func setWinsize(*os.File, *winsize) {}

func (ss *session) runPipes(*exec.Cmd) error { return errNoPrograms }
func (ss *session) runPty(*exec.Cmd) error   { return errNoPrograms }

func exitOf(ps *os.ProcessState) exitInfo { return exitInfo{status: ps.ExitCode()} }

func signalGroup(int, string) bool { return false }
