//go:build linux

// Command kitinit is the guest's init (PID 1); see package kitinit.
package main

import "github.com/kitrun/kitrun/boot/kitinit"

func main() { kitinit.Main() }
