package testcases

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/runtimedir"
)

// Group is a directory of cases with a group.yml: host commands run once
// before the first of its selected tests starts (setup) and once after the
// last one ends (teardown), e.g. to make a fixture its specs use.
//
//	setup:                      # a command or a list, each run with sh -c
//	  - ./make-fixture.sh out/fixture.txt
//	teardown: rm -rf out         # runs even when setup or tests failed
//	timeout: 1m                  # per command; default 1m
//
// Commands run in the group's directory with KITRUN_GROUP (its name),
// KITRUN_GROUP_DIR and KITRUN_RESULTS (the run's results directory) set.
//
// Each command runs in a process group of its own, with its output going to
// a file (never a pipe, which a background child would hold open). At the
// timeout, or when the run is interrupted, the whole group is killed. A
// process that a successful setup command leaves running (a fixture
// daemon) lives until the group's teardown has run, and is then sent
// SIGTERM and, after a grace period, SIGKILL; what a teardown command or a
// failed command leaves behind is ended as soon as that command ends. If
// kitrun itself is killed, the next kitrun start kills them (see
// boot/runtimedir).
type Group struct {
	Name     string
	Dir      string
	File     string
	Setup    []string
	Teardown []string
	Timeout  time.Duration
	ParseErr error

	mu        sync.Mutex
	setupDone bool
	setupErr  error
	remaining int
	daemons   []*runtimedir.Group // left running by successful setup commands
}

// daemonGrace is how long what setup left running has between SIGTERM and
// SIGKILL at the end of the group.
const daemonGrace = 2 * time.Second

func loadGroup(dir, name string) *Group {
	g := &Group{Name: name, Dir: dir, File: filepath.Join(dir, GroupFileName), Timeout: time.Minute}
	data, err := os.ReadFile(g.File)
	if err != nil {
		g.ParseErr = err
		return g
	}
	p := &yparser{file: g.File}
	if root := p.document(data, "a group file"); root != nil {
		for _, e := range p.pairs(root, "group file") {
			switch e.key.Value {
			case "setup":
				g.Setup, _ = p.strs(e.val, "setup")
			case "teardown":
				g.Teardown, _ = p.strs(e.val, "teardown")
			case "timeout":
				if d, ok := p.duration(e.val, "timeout"); ok {
					g.Timeout = d
				}
			default:
				p.unknownKey(e.key, "group file", []string{"setup", "teardown", "timeout"})
			}
		}
	}
	g.ParseErr = p.err()
	return g
}

// label names the group in messages.
func (g *Group) label() string {
	if g.Name == "" {
		return "the top-level group"
	}
	return "group " + g.Name
}

// enter runs the group's setup the first time it is called and returns
// its error every time.
func (g *Group) enter(ctx context.Context, resultsDir string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.setupDone {
		g.setupDone = true
		if g.ParseErr != nil {
			g.setupErr = g.ParseErr
		} else {
			g.setupErr = g.run(ctx, g.Setup, "setup", resultsDir)
		}
	}
	if g.setupErr != nil {
		return fmt.Errorf("%s: setup failed: %w", g.label(), g.setupErr)
	}
	return nil
}

// leave counts one selected test of the group as finished; after the last
// one it runs the teardown (if the group was entered), then ends what the
// setup left running, and returns the teardown's error.
func (g *Group) leave(ctx context.Context, resultsDir string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remaining--
	if g.remaining != 0 || !g.setupDone || g.ParseErr != nil {
		return nil
	}
	err := g.run(ctx, g.Teardown, "teardown", resultsDir)
	for _, d := range g.daemons {
		d.Kill(daemonGrace)
	}
	g.daemons = nil
	if err != nil {
		return fmt.Errorf("%s: teardown failed: %w", g.label(), err)
	}
	return nil
}

// run runs cmds in order, stopping at the first failure; their output goes
// to RESULTS/<group>/<what>.log.
func (g *Group) run(ctx context.Context, cmds []string, what, resultsDir string) (err error) {
	if len(cmds) == 0 {
		return nil
	}
	tmp, err := runtimedir.MkdirTemp("group-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logPath := filepath.Join(tmp, what+".log")
	log, err := os.OpenFile(logPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	if resultsDir != "" {
		defer func() {
			p := filepath.Join(resultsDir, filepath.FromSlash(g.Name), what+".log")
			if werr := copyResultFile(p, logPath); werr != nil && err == nil {
				err = fmt.Errorf("its log could not be saved: %w", werr)
			}
		}()
	}
	for _, c := range cmds {
		fmt.Fprintf(log, "$ %s\n", c)
		start, _ := log.Seek(0, io.SeekEnd)
		if err := g.runOne(ctx, c, what == "setup", log, resultsDir); err != nil {
			msg := fmt.Sprintf("`%s`: %v", c, err)
			if s := strings.TrimSpace(readTail(log, start, groupOutputTail)); s != "" {
				msg += "\n" + lastLines(s, 10)
			}
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

// groupOutputTail bounds how much of a failed command's output is read back
// for its error message.
const groupOutputTail = 8 << 10

// runOne runs one command in its own process group with out as its stdout
// and stderr, and waits at most the group's timeout for it.
func (g *Group) runOne(ctx context.Context, c string, keepDaemons bool, out *os.File, resultsDir string) error {
	cmd := exec.Command("sh", "-c", c)
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), "KITRUN_GROUP="+g.Name, "KITRUN_GROUP_DIR="+g.Dir, "KITRUN_RESULTS="+resultsDir)
	cmd.Stdout, cmd.Stderr = out, out
	pg, err := runtimedir.StartGroup(cmd)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(g.Timeout)
	defer timer.Stop()
	exited := false
	select {
	case err = <-done:
		exited = true
	case <-timer.C:
		err = fmt.Errorf("timed out after %s", g.Timeout)
	case <-ctx.Done():
		err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	if err != nil {
		pg.Kill(0)
		if !exited {
			select {
			case <-done:
			case <-time.After(groupReapWait):
			}
		}
		return err
	}
	switch {
	case pg.Empty():
		pg.Release()
	case keepDaemons:
		g.daemons = append(g.daemons, pg)
	default:
		pg.Kill(daemonGrace)
	}
	return nil
}

// groupReapWait bounds the wait for a killed command's shell to be reaped.
const groupReapWait = 5 * time.Second

// readTail reads at most n bytes of f from offset from on, keeping the end.
func readTail(f *os.File, from int64, n int64) string {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end <= from {
		return ""
	}
	if end-from > n {
		from = end - n
	}
	b := make([]byte, end-from)
	k, _ := f.ReadAt(b, from)
	return string(b[:k])
}

// copyResultFile writes a copy of src to dst in the results, atomically.
func copyResultFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFrom(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
