//go:build linux

// Command listener is the service of bench/reference/listener.yml: it
// listens on a TCP port and accepts connections, through raw system calls so
// that the binary is little more than Go's runtime (no net or fmt).
package main

import (
	"os"
	"syscall"
)

func main() {
	port := 8080
	if len(os.Args) > 1 {
		port = atoi(os.Args[1])
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		syscall.Exit(1)
	}
	if syscall.Bind(fd, &syscall.SockaddrInet4{Port: port}) != nil || syscall.Listen(fd, 16) != nil {
		syscall.Exit(1)
	}
	for {
		c, _, err := syscall.Accept(fd)
		if err == nil {
			syscall.Close(c)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			syscall.Exit(2)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
