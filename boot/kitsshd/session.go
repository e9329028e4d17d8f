package kitsshd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// NoShellMessage is what a shell request gets in an image without a shell.
const NoShellMessage = "no shell in this image; add one (e.g. busybox) to the spec"

const (
	// outputGrace is how long a finished command's output may stay open
	// (held by a background process) before the session ends anyway.
	outputGrace = 2 * time.Second
	// hangupGrace is how long a hung-up command has between SIGHUP and
	// SIGKILL.
	hangupGrace = time.Second
)

// session is one session channel: at most one command.
type session struct {
	srv  *Server
	ch   ssh.Channel
	env  []string // from env requests, in order
	term string

	mu      sync.Mutex
	win     *winsize // set by pty-req: the command runs on a pty
	started bool
	hungup  bool
	pid     int      // process group of the running command; 0 when none
	ptmx    *os.File // the pty's master, while the command runs on one
	done    chan struct{}
}

func (s *Server) serveSession(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ss := &session{srv: s, ch: ch, done: make(chan struct{})}
	for req := range reqs {
		ok, run := ss.request(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if run != nil {
			go run()
		}
	}
	// The client closed the channel, or the connection is gone.
	ss.hangup()
}

// request handles one channel request; run, when set, starts the command
// once the request has been answered.
func (ss *session) request(req *ssh.Request) (ok bool, run func()) {
	switch req.Type {
	case "env":
		var kv struct{ Name, Value string }
		if ssh.Unmarshal(req.Payload, &kv) != nil || kv.Name == "" || strings.ContainsAny(kv.Name, "=\x00") {
			return false, nil
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.started {
			return false, nil
		}
		ss.env = append(ss.env, kv.Name+"="+kv.Value)
		return true, nil
	case "pty-req":
		var p struct {
			Term                   string
			Cols, Rows, XPix, YPix uint32
			Modes                  string
		}
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false, nil
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.started {
			return false, nil
		}
		ss.term = p.Term
		ss.win = newWinsize(p.Cols, p.Rows, p.XPix, p.YPix)
		return true, nil
	case "window-change":
		var p struct{ Cols, Rows, XPix, YPix uint32 }
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false, nil
		}
		ss.resize(newWinsize(p.Cols, p.Rows, p.XPix, p.YPix))
		return true, nil
	case "signal":
		var p struct{ Signal string }
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false, nil
		}
		return ss.signal(p.Signal), nil
	case "exec", "shell":
		var command string
		if req.Type == "exec" {
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				return false, nil
			}
			command = p.Command
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.started {
			return false, nil
		}
		ss.started = true
		shell, onPty := req.Type == "shell", ss.win != nil
		return true, func() { ss.finish(ss.run(command, shell, onPty)) }
	}
	// subsystem (sftp), x11-req, auth-agent-req@openssh.com, …
	return false, nil
}

// exitInfo is how a command ended.
type exitInfo struct {
	status int
	signal string // without "SIG"; set when a signal killed it
	core   bool
}

// finish reports the exit and closes the channel.
func (ss *session) finish(e exitInfo) {
	ss.ch.CloseWrite()
	if e.signal != "" {
		ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{e.signal, e.core, "", ""}))
	} else {
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(e.status)}))
	}
	ss.ch.Close()
}

// run runs one exec (or shell) request to its end.
func (ss *session) run(command string, shell, onPty bool) exitInfo {
	defer close(ss.done)
	stderr := ss.ch.Stderr()
	if onPty {
		stderr = ss.ch // a terminal has one output
	}
	if answer := ss.srv.cfg.Exec; answer != nil {
		if shell {
			fmt.Fprintln(stderr, NoShellMessage)
			return exitInfo{status: 127}
		}
		return exitInfo{status: answer(command, ss.ch, ss.ch, stderr)}
	}
	argv, splitErr := Split(command)
	if !shell && splitErr == nil && len(argv) > 0 {
		if b, ok := builtins[argv[0]]; ok {
			return exitInfo{status: b(ss.ch, stderr, argv[1:])}
		}
	}
	sh := ss.srv.cfg.Shell
	hasShell := isExecutable(sh)
	switch {
	case shell && hasShell:
		argv = []string{sh, "-l"}
	case shell:
		fmt.Fprintln(stderr, NoShellMessage)
		return exitInfo{status: 127}
	case hasShell:
		argv = []string{sh, "-c", command}
	case splitErr != nil:
		fmt.Fprintf(stderr, "kitsshd: %v\n", splitErr)
		return exitInfo{status: 2}
	case len(argv) == 0:
		return exitInfo{}
	}
	prog := ss.lookPath(argv[0])
	if prog == "" {
		fmt.Fprintf(stderr, "kitsshd: %s: command not found\n", argv[0])
		return exitInfo{status: 127}
	}
	cmd := &exec.Cmd{Path: prog, Args: argv, Env: ss.environ(), Dir: "/"}
	if st, err := os.Stat("/root"); err == nil && st.IsDir() {
		cmd.Dir = "/root"
	}
	var err error
	if onPty {
		err = ss.runPty(cmd)
	} else {
		err = ss.runPipes(cmd)
	}
	if cmd.ProcessState == nil { // never started
		fmt.Fprintf(stderr, "kitsshd: %v\n", err)
		if errors.Is(err, os.ErrNotExist) {
			return exitInfo{status: 127}
		}
		return exitInfo{status: 126}
	}
	return exitOf(cmd.ProcessState)
}

// start starts cmd unless the session has been hung up already.
func (ss *session) start(cmd *exec.Cmd, ptmx *os.File) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.hungup {
		return errors.New("session closed before the command started")
	}
	if ptmx != nil {
		setWinsize(ptmx, ss.win)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ss.pid, ss.ptmx = cmd.Process.Pid, ptmx
	return nil
}

// stopped forgets the process once it has been reaped.
func (ss *session) stopped() {
	ss.mu.Lock()
	ss.pid, ss.ptmx = 0, nil
	ss.mu.Unlock()
}

// signal forwards a signal request ("TERM", "INT", …) to the command's
// process group.
func (ss *session) signal(name string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.pid == 0 {
		return false
	}
	return signalGroup(ss.pid, name)
}

func (ss *session) resize(w *winsize) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.win != nil {
		ss.win = w
	}
	if ss.ptmx != nil {
		setWinsize(ss.ptmx, w)
	}
}

// hangup ends a command whose session is gone: SIGHUP to its process
// group, then SIGKILL if it is still there after hangupGrace.
func (ss *session) hangup() {
	ss.mu.Lock()
	ss.hungup = true
	pid := ss.pid
	ss.mu.Unlock()
	if pid == 0 {
		return
	}
	signalGroup(pid, "HUP")
	select {
	case <-ss.done:
	case <-time.After(hangupGrace):
		ss.mu.Lock()
		if ss.pid != 0 {
			signalGroup(ss.pid, "KILL")
		}
		ss.mu.Unlock()
	}
}

// environ is the command's environment: a root login's, then the client's
// env requests (which win).
func (ss *session) environ() []string {
	env := []string{
		"PATH=" + ss.srv.cfg.Path, "HOME=/root", "USER=root", "LOGNAME=root",
		"SHELL=" + ss.srv.cfg.Shell,
	}
	if ss.term != "" {
		env = append(env, "TERM="+ss.term)
	}
	return append(env, ss.env...)
}

// lookPath finds a program in the server's PATH; "" if there is none.
func (ss *session) lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range filepath.SplitList(ss.srv.cfg.Path) {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}
