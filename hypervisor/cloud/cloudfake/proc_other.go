//go:build !linux

package cloudfake

import "os/exec"

// start starts cmd. Outside Linux there is no parent-death signal: the
// fakes' Close kills what they started.
func start(cmd *exec.Cmd) (<-chan error, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	return waited, nil
}

// kill kills QEMU.
func kill(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Kill()
	}
}
