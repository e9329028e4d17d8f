//go:build !linux && !darwin && !windows

package qemu

func accelUnusable(hw string) string { return "no hardware accelerator known on this OS" }
