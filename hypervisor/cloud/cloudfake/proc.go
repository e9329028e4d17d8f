package cloudfake

import "os/exec"

// Spawn starts a helper process a fake runs (an emulator such as
// Azurite) as QEMU is started: in its own process group, dying with the
// test process where the OS allows (see start). The channel gets its Wait
// result.
func Spawn(cmd *exec.Cmd) (<-chan error, error) { return start(cmd) }

// KillProcess kills what Spawn started (its group, where there is one).
func KillProcess(cmd *exec.Cmd) { kill(cmd) }
