package childproc

import (
	"os"
	"syscall"
)

// Attr is the SysProcAttr of an owned child: its own process group.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// KillGroup kills p (Windows has no process-group kill).
func KillGroup(p *os.Process) { p.Kill() }
