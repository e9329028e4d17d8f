// Command demo is the multi-call program of examples/rich.yml: small jobs an
// appliance's boot is made of (render a config, check it, serve on a unix
// socket, crash once, signal readiness with a file, copy stdin to stdout).
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: demo render|check|unixserver|flaky|worker|cat ARGS")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "render": // render TEMPLATE OUT: replace @HOSTNAME@
		need(args, 2)
		tmpl, err := os.ReadFile(args[0])
		check(err)
		host, _ := os.Hostname()
		out := bytes.ReplaceAll(tmpl, []byte("@HOSTNAME@"), []byte(host))
		check(os.MkdirAll(dir(args[1]), 0o755))
		check(os.WriteFile(args[1], out, 0o644))
		fmt.Printf("render: wrote %s (%d bytes)\n", args[1], len(out))
	case "check": // check FILE WORD: FILE must contain WORD
		need(args, 2)
		b, err := os.ReadFile(args[0])
		check(err)
		if !strings.Contains(string(b), args[1]) {
			fail(fmt.Sprintf("check: %s does not contain %q", args[0], args[1]))
		}
		fmt.Printf("check: %s ok\n", args[0])
	case "unixserver": // unixserver PATH: answer every connection with the uid
		need(args, 1)
		os.Remove(args[0])
		l, err := net.Listen("unix", args[0])
		check(err)
		fmt.Printf("unixserver: listening on %s as uid %d\n", args[0], os.Getuid())
		for {
			c, err := l.Accept()
			check(err)
			fmt.Fprintf(c, "uid=%d\n", os.Getuid())
			c.Close()
		}
	case "flaky": // flaky MARKER: exit 1 the first time, serve the next
		need(args, 1)
		catchStop()
		if _, err := os.Stat(args[0]); err != nil {
			check(os.WriteFile(args[0], []byte("crashed once\n"), 0o644))
			fail("flaky: first start, crashing on purpose")
		}
		fmt.Println("flaky: second start, serving")
		wait()
	case "worker": // worker READYFILE: write it after starting, then idle
		need(args, 1)
		catchStop()
		check(os.WriteFile(args[0], []byte(fmt.Sprintf("uid=%d\n", os.Getuid())), 0o644))
		fmt.Printf("worker: ready as uid %d\n", os.Getuid())
		wait()
	case "cat": // cat: copy stdin to stdout
		// A plain loop: io.Copy between files would link in the
		// splice/sendfile machinery (60 KB).
		buf := make([]byte, 32<<10)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				_, werr := os.Stdout.Write(buf[:n])
				check(werr)
			}
			if err == io.EOF {
				break
			}
			check(err)
		}
	default:
		fail("demo: unknown job " + os.Args[1])
	}
}

// stopSignals is set by catchStop, which a long-running job calls before it
// says it is ready: a TERM right after "ready" must find it handled.
var stopSignals chan os.Signal

func catchStop() {
	stopSignals = make(chan os.Signal, 1)
	signal.Notify(stopSignals, syscall.SIGTERM, syscall.SIGINT)
}

func wait() {
	select {
	case s := <-stopSignals:
		fmt.Printf("demo: %s, exiting\n", s)
	case <-time.After(24 * time.Hour):
	}
}

func dir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

func need(args []string, n int) {
	if len(args) < n {
		fail(fmt.Sprintf("need %d arguments, got %d", n, len(args)))
	}
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
