//go:build !linux

package qemu

import (
	"errors"
	"os/exec"
)

const (
	havePdeathsig   = false
	defaultTeardown = TeardownWatchdog
)

func startPdeathsig(*exec.Cmd) (*proc, error) {
	return nil, errors.New("no parent-death signal on this OS")
}
