//go:build windows

package hyperv

import "os/exec"

func setProcAttr(*exec.Cmd) {}
