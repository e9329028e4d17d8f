package testcases

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
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
}

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
// one it runs the teardown (if the group was entered) and returns its error.
func (g *Group) leave(ctx context.Context, resultsDir string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remaining--
	if g.remaining != 0 || !g.setupDone || g.ParseErr != nil {
		return nil
	}
	if err := g.run(ctx, g.Teardown, "teardown", resultsDir); err != nil {
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
	var log bytes.Buffer
	defer func() {
		if resultsDir == "" {
			return
		}
		p := filepath.Join(resultsDir, filepath.FromSlash(g.Name), what+".log")
		if werr := writeResultFile(p, log.Bytes()); werr != nil && err == nil {
			err = fmt.Errorf("its log could not be saved: %w", werr)
		}
	}()
	for _, c := range cmds {
		cctx, cancel := context.WithTimeout(ctx, g.Timeout)
		cmd := exec.CommandContext(cctx, "sh", "-c", c)
		cmd.Dir = g.Dir
		cmd.Env = append(os.Environ(), "KITRUN_GROUP="+g.Name, "KITRUN_GROUP_DIR="+g.Dir, "KITRUN_RESULTS="+resultsDir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		fmt.Fprintf(&log, "$ %s\n", c)
		err := cmd.Run()
		cancel()
		log.Write(out.Bytes())
		if cctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", g.Timeout)
		}
		if err != nil {
			msg := fmt.Sprintf("`%s`: %v", c, err)
			if s := strings.TrimSpace(out.String()); s != "" {
				msg += "\n" + lastLines(s, 10)
			}
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
