//go:build linux

package hypervfake

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kitrun/kitrun/hypervisor/hyperv"
)

// EnvSocket, set in a process's environment, makes MaybeRunPwsh act as
// PowerShell: the value is the fake host's socket.
const EnvSocket = "KITRUN_FAKE_HYPERV"

// request is one PowerShell invocation, sent to the fake host.
type request struct {
	Args   []string `json:"args"`
	Script string   `json:"script"`
	PID    int      `json:"pid"`
}

// response is what the invocation prints, its exit status, and a stream
// the client carries on its own stdio (a file to receive, a relay).
type response struct {
	Stdout string  `json:"stdout"`
	Stderr string  `json:"stderr"`
	Exit   int     `json:"exit"`
	Stream *stream `json:"stream,omitempty"`
}

type stream struct {
	Kind      string `json:"kind"` // receive | unix | tcp
	Path      string `json:"path"` // receive: the file; unix: the socket
	Directory string `json:"directory"`
	Addr      string `json:"addr"` // tcp
	Pipe      string `json:"pipe"` // unix: the pipe's name
	Timeout   int    `json:"timeout"`
}

// MaybeRunPwsh acts as PowerShell and exits when the process was started
// as the fake host's PowerShell (EnvSocket set); otherwise it returns. Call
// it first thing in TestMain.
func MaybeRunPwsh() {
	sock := os.Getenv(EnvSocket)
	if sock == "" {
		return
	}
	os.Exit(runPwsh(sock, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func runPwsh(sock string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if !slices.Equal(args, hyperv.PwshArgs()) {
		fmt.Fprintf(stderr, "fake pwsh: unexpected arguments %q; kitrun always runs %q\n", args, hyperv.PwshArgs())
		return 64
	}
	// What the bootstrap does: one line of base64, the script. Byte by
	// byte, so that the rest of stdin stays for the script.
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := stdin.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			fmt.Fprintf(stderr, "fake pwsh: reading the script: %v\n", err)
			return 1
		}
	}
	script, err := base64.StdEncoding.DecodeString(string(line))
	if err != nil {
		fmt.Fprintf(stderr, "fake pwsh: the script line is not base64: %v\n", err)
		return 1
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintf(stderr, "fake pwsh: no fake Hyper-V host at %s: %v\n", sock, err)
		return 1
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(request{Args: args, Script: string(script), PID: os.Getpid()}); err != nil {
		fmt.Fprintf(stderr, "fake pwsh: %v\n", err)
		return 1
	}
	var resp response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		fmt.Fprintf(stderr, "fake pwsh: no answer from the fake host: %v\n", err)
		return 1
	}
	io.WriteString(stderr, resp.Stderr)
	if resp.Stream == nil || resp.Exit != 0 {
		io.WriteString(stdout, resp.Stdout)
		return resp.Exit
	}
	s := resp.Stream
	switch s.Kind {
	case "receive":
		return receive(s, stdin, stdout, stderr)
	case "unix":
		fmt.Fprintln(stderr, "kitrun-relay: waiting")
		deadline := time.Now().Add(time.Duration(s.Timeout) * time.Second)
		for {
			conn, err := net.Dial("unix", s.Path)
			if err == nil {
				fmt.Fprintln(stderr, "kitrun-relay: connected")
				return relay(conn, stdin, stdout)
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(stdout, errorJSON("connect to pipe "+s.Pipe, "Timed out connecting to the pipe"))
				return 1
			}
			time.Sleep(20 * time.Millisecond)
		}
	case "tcp":
		conn, err := net.DialTimeout("tcp", s.Addr, time.Duration(s.Timeout)*time.Second)
		if err != nil {
			fmt.Fprintln(stdout, errorJSON("connect to "+s.Addr, err.Error()))
			return 1
		}
		fmt.Fprintln(stderr, "kitrun-relay: connected")
		return relay(conn, stdin, stdout)
	}
	fmt.Fprintf(stderr, "fake pwsh: unknown stream %q\n", s.Kind)
	return 1
}

func receive(s *stream, stdin io.Reader, stdout, stderr io.Writer) int {
	f, err := os.Create(s.Path)
	if err != nil {
		fmt.Fprintln(stdout, errorJSON("receive "+filepath.Base(s.Path), err.Error()))
		return 1
	}
	n, err := io.Copy(f, stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stdout, errorJSON("receive "+filepath.Base(s.Path), err.Error()))
		return 1
	}
	out, _ := json.Marshal(map[string]any{"path": s.Path, "directory": s.Directory, "size": n})
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// relay copies conn to stdout until it ends, and stdin to conn, as
// Copy-KitrunStream does.
func relay(conn net.Conn, stdin io.Reader, stdout io.Writer) int {
	go io.Copy(conn, stdin)
	io.Copy(stdout, conn)
	conn.Close()
	return 0
}

func errorJSON(step, msg string) string {
	b, _ := json.Marshal(map[string]string{"error": msg, "step": step})
	return string(b)
}
