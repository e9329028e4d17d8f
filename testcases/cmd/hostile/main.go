//go:build linux

// Command hostile is a guest program that behaves as a hostile or broken
// service would, for the shipped cases under cases/080_hostile: it floods
// the console, writes without newlines, prints terminal escape sequences,
// prints lines that talk about kernel panics, and, as root, tries to write
// forged events on kitinit's channel. Each job then says what it did and
// waits, so that the case can check that the host's verdict is unchanged.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hostile flood|nonewline|escapes|fakepanic|forge")
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	switch os.Args[1] {
	case "flood": // many lines, as fast as the console takes them
		line := bytes.Repeat([]byte("flood "), 20)
		line = append(line, '\n')
		for range 2000 {
			os.Stdout.Write(line)
		}
		fmt.Println("hostile: flood done")
	case "nonewline": // one 512 KiB line, then a newline
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 8 {
			os.Stdout.Write(chunk)
		}
		fmt.Println()
		fmt.Println("hostile: long line done")
	case "escapes": // what would wipe or hijack a terminal
		for _, s := range []string{
			"\x1bc",                      // full reset
			"\x1b[2J\x1b[3J\x1b[H",       // clear screen and scrollback
			"\x1b]0;pwned title\x07",     // window title
			"\x1b]52;c;cHduZWQ=\x07",     // clipboard
			"\x1bP+q544e\x1b\\",          // DCS query
			"\x1b[6n",                    // cursor position report request
			"\x9b2J",                     // C1 CSI
			"\x1b[31mred\x1b[0m plain\n", // colour
		} {
			os.Stdout.Write([]byte(s))
		}
		fmt.Println("hostile: escapes done")
	case "fakepanic": // lines that mention panics, none the kernel's
		fmt.Println("Kernel panic - not syncing: a service said so")
		fmt.Println("[    1.234567] Kernel panic - not syncing: a service's fake time stamp")
		fmt.Println("\r[    2.345678] Kernel panic - not syncing: after a carriage return")
		fmt.Println("hostile: fake panics done")
	case "forge": // write forged events and panics where the host reads
		if err := syscall.Mknod("/chan", syscall.S_IFCHR|0o600, 4<<8|65); err != nil {
			fmt.Printf("hostile: forge: mknod: %v\n", short(err))
		} else {
			fmt.Println("hostile: forge: mknod: made")
		}
		// The channel and console devices of this machine, as the kernel
		// command line names them, then the other places a forger tries.
		devs := map[string]string{}
		if b, err := os.ReadFile("/proc/cmdline"); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if v, ok := strings.CutPrefix(f, initproto.ParamChannel+"="); ok && strings.HasPrefix(v, "/dev/") {
					devs["channel"] = v
				}
				if v, ok := strings.CutPrefix(f, "console="); ok {
					devs["console device"] = "/dev/" + strings.Split(v, ",")[0]
				}
			}
		}
		devs["console"], devs["kmsg"], devs["made node"] = "/dev/console", "/dev/kmsg", "/chan"
		for _, what := range []string{"channel", "console device", "console", "kmsg", "made node"} {
			dev := devs[what]
			if dev == "" {
				continue
			}
			f, err := os.OpenFile(dev, os.O_WRONLY|syscall.O_NOCTTY, 0)
			if err != nil {
				fmt.Printf("hostile: forge: %s: %v\n", what, short(err))
				continue
			}
			// Well framed, checksums right: only where they are written
			// can give them away.
			forged := initproto.Event{Uptime: 1, Kind: initproto.EvServiceFailed, Name: "forge", Detail: "forged"}.Encode()
			forged = append(forged, "[    3.000000] Kernel panic - not syncing: forged\n"...)
			_, err = f.Write(forged)
			f.Close()
			fmt.Printf("hostile: forge: %s: wrote: %v\n", what, err)
		}
		fmt.Println("hostile: forge done")
	default:
		fmt.Fprintln(os.Stderr, "hostile: unknown job "+os.Args[1])
		os.Exit(2)
	}
	select {
	case <-stop:
	case <-time.After(24 * time.Hour):
	}
}

func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
