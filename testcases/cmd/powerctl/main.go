//go:build linux

// Command powerctl ends the guest by itself, the way a program that decides
// the machine is done would: `powerctl off` powers it off and `powerctl
// reboot` restarts it, with reboot(2) after an optional delay. kitinit is
// not asked: the kernel acts at once. kitrun's test cases use it to check
// that a guest which ends itself is seen as ending cleanly.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	delay := flag.Duration("delay", 0, "wait this long first")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: powerctl [-delay D] off|reboot")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	cmd := 0
	switch flag.Arg(0) {
	case "off":
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	case "reboot":
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	default:
		flag.Usage()
		os.Exit(2)
	}
	// Said before the delay: output still in flight through kitinit when
	// the kernel stops would never reach the console.
	fmt.Printf("powerctl: %s in %s\n", flag.Arg(0), *delay)
	time.Sleep(*delay)
	unix.Sync()
	if err := unix.Reboot(cmd); err != nil {
		fmt.Fprintf(os.Stderr, "powerctl: reboot(2): %v\n", err)
		os.Exit(1)
	}
	select {} // the machine is gone
}
