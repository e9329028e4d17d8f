//go:build unix

package lifecycle

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

func sigkill(pid int) { unix.Kill(pid, unix.SIGKILL) }

// detach gives the supervisor its own session: no terminal, no Ctrl-C, no
// hangup reaches it.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
