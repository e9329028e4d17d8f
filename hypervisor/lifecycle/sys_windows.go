package lifecycle

import (
	"os"
	"os/exec"
	"syscall"
)

func sigkill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
		p.Release()
	}
}

// detach starts the supervisor without a console and in its own process
// group: no console window, no Ctrl-C reaches it.
func detach(cmd *exec.Cmd) {
	const detachedProcess = 0x00000008 // DETACHED_PROCESS
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}
