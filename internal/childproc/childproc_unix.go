//go:build unix && !linux

package childproc

import (
	"os"
	"syscall"
)

// Attr is the SysProcAttr of an owned child: its own group (there is no
// parent-death signal here).
func Attr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// KillGroup kills p's process group (p leads it: Attr).
func KillGroup(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGKILL) }
