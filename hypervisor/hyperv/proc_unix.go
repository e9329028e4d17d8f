//go:build !windows

package hyperv

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts a local PowerShell in its own process group, so that a
// terminal's Ctrl-C reaches kitrun only (kitrun then stops the VM in order).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
