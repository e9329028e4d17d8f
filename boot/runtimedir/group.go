package runtimedir

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/procid"
)

// A Group is the process group of a command started with StartGroup: the
// command and everything it started that did not leave the group. It is
// recorded in the runtime directory until Kill or Release, so that if this
// process dies first, the next sweep kills it.
type Group struct {
	r      *root
	leader procid.ID
	once   sync.Once
}

// StartGroup starts cmd as the leader of a new process group (where the
// platform has them) and adopts that group. Give cmd files, not pipes, for
// output: a background child holds a pipe open, and Wait would wait for it.
func StartGroup(cmd *exec.Cmd) (*Group, error) { return def().StartGroup(cmd) }

func (r *root) StartGroup(cmd *exec.Cmd) (*Group, error) {
	if _, err := r.Dir(); err != nil {
		return nil, err
	}
	setNewGroup(cmd)
	release, err := gate(cmd)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		release(false)
		return nil, err
	}
	// The leader's /proc entry stays readable until Wait reaps it, so its
	// start time is right even if it has already ended.
	g := &Group{r: r, leader: procid.Of(cmd.Process.Pid)}
	r.mu.Lock()
	r.groups = append(r.groups, g.leader)
	if r.dir != "" {
		err = r.writeGroups(r.dir)
	}
	if err != nil {
		r.groups = r.groups[:len(r.groups)-1]
	}
	r.mu.Unlock()
	if err != nil {
		release(false)
		cmd.Wait()
		return nil, errors.Join(errors.New("recording the process group"), err)
	}
	// Only now may the command run: had this process died before the
	// record was written, nothing it started would be known to the sweep.
	if err := release(true); err != nil {
		signalGroup(g.leader, sigKill)
		cmd.Wait()
		g.Release()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	return g, nil
}

// Empty says whether no process is left in the group.
func (g *Group) Empty() bool { return groupEmpty(g.leader) }

// Kill ends the group: a polite signal first (SIGTERM), then, if processes
// remain after grace, SIGKILL (grace 0: SIGKILL at once), and a short wait
// for the killed to be reaped. The group is forgotten afterwards.
func (g *Group) Kill(grace time.Duration) {
	if grace > 0 {
		signalGroup(g.leader, sigTerm)
		waitEmpty(g, grace)
	}
	if !g.Empty() {
		signalGroup(g.leader, sigKill)
		// Killed processes linger until reaped (by init, for orphans).
		waitEmpty(g, killReapWait)
	}
	g.Release()
}

// killReapWait bounds the wait for SIGKILLed members to be reaped.
const killReapWait = 2 * time.Second

func waitEmpty(g *Group, d time.Duration) {
	for deadline := time.Now().Add(d); !g.Empty() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// Release forgets the group without signalling it (it is known to be
// empty, or its fate is someone else's).
func (g *Group) Release() {
	g.once.Do(func() {
		r := g.r
		r.mu.Lock()
		defer r.mu.Unlock()
		if i := slices.Index(r.groups, g.leader); i >= 0 {
			r.groups = slices.Delete(r.groups, i, i+1)
			if r.dir != "" {
				r.writeGroups(r.dir)
			}
		}
	})
}
