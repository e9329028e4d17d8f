//go:build linux

// Command floorinit is the boot-time floor's init: the least a userspace can
// do. It powers the machine off the moment the kernel hands over, so the time
// from QEMU exec to QEMU exit is the cost of the VMM, the firmware and the
// kernel alone — the physical reference every kitrun boot figure is compared
// against.
package main

import "syscall"

func main() {
	// Tell the host the kernel handed over: one byte on the console.
	syscall.Write(1, []byte("floor: init\n"))
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
