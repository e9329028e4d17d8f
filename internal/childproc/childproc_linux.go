package childproc

import (
	"os"
	"syscall"
)

// Attr is the SysProcAttr of an owned child: its own group, and SIGKILL
// when the thread that started it exits.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillGroup kills p's process group (p leads it: Attr).
func KillGroup(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGKILL) }
