//go:build linux

// Command kitsshd is kitrun's guest SSH server (see package kitsshd). The
// assembler installs it at /usr/sbin/kitsshd and kitinit supervises it as
// the service "sshd"; the host delivers the keys at each boot.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/kitrun/kitrun/boot/kitsshd"
)

func main() {
	port := flag.Int("port", 22, "TCP port to listen on (all addresses)")
	hostKey := flag.String("host-key", kitsshd.DefaultHostKey, "host private key (PEM)")
	authorized := flag.String("authorized-keys", kitsshd.DefaultAuthorizedKeys, "authorized_keys file")
	seed := flag.String("random-seed", kitsshd.DefaultRandomSeed, "per-boot random seed to credit to the kernel, then remove (optional)")
	flag.Parse()
	// Before anything reads crypto/rand: see kitsshd.CreditSeed.
	if _, err := kitsshd.CreditSeed(*seed); err != nil {
		fmt.Fprintln(os.Stderr, "kitsshd: random seed:", err)
	}
	if err := run(*port, *hostKey, *authorized); err != nil {
		fmt.Fprintln(os.Stderr, "kitsshd:", err)
		os.Exit(1)
	}
}

func run(port int, hostKeyPath, authorizedPath string) error {
	host, keys, err := kitsshd.LoadKeys(hostKeyPath, authorizedPath)
	if err != nil {
		return fmt.Errorf("%w\nkitrun delivers the SSH keys at boot: boot this image with SSH on (vm.Options{SSH: true})", err)
	}
	srv, err := kitsshd.New(kitsshd.Config{
		HostKey: host, AuthorizedKeys: keys,
		// Read again when replaced: a VM restored from a snapshot gets
		// fresh keys from kitinit while this server runs.
		Keys: kitsshd.KeyFiles(hostKeyPath, authorizedPath),
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "kitsshd: "+format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	fmt.Printf("kitsshd: listening on port %d (%d authorized key(s))\n", port, len(keys))
	return srv.Serve(l)
}
