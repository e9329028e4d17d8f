//go:build linux

package kitinit

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

const (
	defaultPath = "/usr/sbin:/usr/bin:/sbin:/bin"
	keepLines   = 20                     // output lines kept for failure events
	drainWait   = 250 * time.Millisecond // how long a failure report waits for output
)

var errStopping = errors.New("shutting down")

// proc is one started process. Its process group id is its pid (Setsid).
type proc struct {
	pid     int
	exit    <-chan unix.WaitStatus
	outDone chan struct{} // closed at end of output; nil when output is discarded
}

// drain waits, briefly, until the process's output has been read, so that
// a failure report carries its last lines. A grandchild may keep the pipe
// open for ever, hence the bound.
func (p *proc) drain() {
	if p.outDone == nil {
		return
	}
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-p.outDone:
	case <-t.C:
	}
}

// output is where a task's or service's stdout and stderr lines go: the
// console with a "[name] " prefix, <LogDir>/<name>.log, and the last
// keepLines lines in memory.
type output struct {
	name string
	con  *console
	log  *os.File // nil if it could not be created

	mu    sync.Mutex
	lines [keepLines]string
	n     int // lines seen
}

func (k *kitinit) newOutput(name string) *output {
	o := &output{name: name, con: k.con}
	if k.logDir != "" {
		f, err := os.OpenFile(filepath.Join(k.logDir, strings.ReplaceAll(name, "/", "_")+".log"),
			os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			k.ev.errorf("log of %s: %v", name, err)
		} else {
			o.log = f
		}
	}
	return o
}

func (o *output) line(s string) {
	o.mu.Lock()
	o.lines[o.n%keepLines] = s
	o.n++
	o.mu.Unlock()
	o.con.write("[" + o.name + "] " + s + "\n")
	if o.log != nil {
		o.log.WriteString(s + "\n")
	}
}

// last returns the last lines, oldest first.
func (o *output) last() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(o.n, keepLines)
	out := make([]string, 0, n)
	for i := o.n - n; i < o.n; i++ {
		out = append(out, o.lines[i%keepLines])
	}
	return out
}

// logWatch is a log readiness probe for one run of a service: it sees every
// line of that run from the first, since it is attached before the start.
type logWatch struct {
	re   *regexp.Regexp
	hit  chan struct{}
	once sync.Once
	mu   sync.Mutex
	done bool
}

func newLogWatch(re *regexp.Regexp) *logWatch {
	return &logWatch{re: re, hit: make(chan struct{})}
}

func (w *logWatch) check(s string) {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	if done || !w.re.MatchString(s) {
		return
	}
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.once.Do(func() { close(w.hit) })
}

// pump reads a process's output pipe line by line until every writer has
// closed it.
func pump(f *os.File, o *output, w *logWatch, done chan struct{}) {
	defer close(done)
	defer f.Close()
	br := bufio.NewReaderSize(f, 4096)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			s := strings.TrimRight(string(b), "\r\n")
			if w != nil {
				w.check(s)
			}
			o.line(s)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// environ is e's environment plus PATH and HOME if unset, sorted.
func environ(e initproto.Exec) []string {
	env := make([]string, 0, len(e.Env)+2)
	for k, v := range e.Env {
		env = append(env, k+"="+v)
	}
	if _, ok := e.Env["PATH"]; !ok {
		env = append(env, "PATH="+defaultPath)
	}
	if _, ok := e.Env["HOME"]; !ok {
		home := "/"
		if e.UID == 0 {
			home = "/root"
		}
		env = append(env, "HOME="+home)
	}
	sort.Strings(env)
	return env
}

// lookPath finds a command without a slash in the default PATH (the
// configuration has absolute paths; exec probes may not).
func lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range strings.Split(defaultPath, ":") {
		p := dir + "/" + name
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return p
		}
	}
	return name
}

// spawn starts e (argv defaults to Path followed by Args) in its own
// session and process group, stdin from /dev/null, stdout and stderr to out
// (nil: /dev/null). A gated start is refused once shutdown has begun: every
// gated process is therefore in k.live when shutdown signals them.
func (k *kitinit) spawn(e initproto.Exec, argv []string, out *output, w *logWatch, gated bool) (*proc, error) {
	if argv == nil {
		argv = append([]string{e.Path}, e.Args...)
	}
	dir := e.Dir
	if dir == "" {
		dir = "/"
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	if e.UID != 0 || e.GID != 0 {
		sys.Credential = &syscall.Credential{Uid: e.UID, Gid: e.GID, Groups: []uint32{}}
	}
	path := lookPath(e.Path)
	if e.Sandbox != nil {
		name := e.Path
		if out != nil {
			name = out.name
		}
		var cgroup int
		var err error
		path, argv, sys, cgroup, err = sandboxSpawn(e, argv, name)
		if err != nil {
			return nil, err
		}
		defer unix.Close(cgroup)
		dir = "/" // the helper changes to e.Dir inside the sandbox's root
	}
	attr := &syscall.ProcAttr{Dir: dir, Env: environ(e), Sys: sys}

	var rf *os.File
	wfd := k.devnull
	if out != nil {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		unix.SetNonblock(p[0], true) // so that os.File reads through the poller
		rf = os.NewFile(uintptr(p[0]), "|"+out.name)
		wfd = p[1]
		defer unix.Close(p[1])
	}
	attr.Files = []uintptr{uintptr(k.devnull), uintptr(wfd), uintptr(wfd)}

	if gated {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.stopping {
			if rf != nil {
				rf.Close()
			}
			return nil, errStopping
		}
	}
	pid, exit, err := k.reaper.Start(path, argv, attr)
	if err != nil {
		if rf != nil {
			rf.Close()
		}
		return nil, err
	}
	k.addLive(pid)
	p := &proc{pid: pid, exit: exit}
	if rf != nil {
		p.outDone = make(chan struct{})
		go pump(rf, out, w, p.outDone)
	}
	return p, nil
}

// wait returns p's exit status once it has ended.
func (k *kitinit) wait(p *proc) unix.WaitStatus {
	ws := <-p.exit
	k.removeLive(p.pid)
	return ws
}

// killGroup signals p's process group.
func killGroup(pid int, sig unix.Signal) {
	unix.Kill(-pid, sig)
}

func (k *kitinit) addLive(pid int) {
	k.liveMu.Lock()
	k.live[pid] = struct{}{}
	k.liveMu.Unlock()
}

func (k *kitinit) removeLive(pid int) {
	k.liveMu.Lock()
	delete(k.live, pid)
	close(k.liveChanged)
	k.liveChanged = make(chan struct{})
	k.liveMu.Unlock()
}

// signalLive signals the process group of every process kitinit started
// that has not ended yet.
func (k *kitinit) signalLive(sig unix.Signal) {
	k.liveMu.Lock()
	defer k.liveMu.Unlock()
	for pid := range k.live {
		killGroup(pid, sig)
	}
}

// waitLive waits until every process kitinit started has ended, or timeout.
func (k *kitinit) waitLive(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		k.liveMu.Lock()
		n, ch := len(k.live), k.liveChanged
		k.liveMu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// readDirNames lists a directory, sorted; nil if it cannot be read.
func readDirNames(dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	sort.Strings(names)
	return names
}
