package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// recvDeadline clamps d to ctx's deadline.
func recvDeadline(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return max(time.Until(dl), time.Millisecond)
	}
	return d
}

// Stop powers the VM off gracefully: kitinit runs its onshutdown tasks; the
// power-off is forced after grace (0: the VM's default). It returns the
// final VM; changed is false when the VM was not running (not an error).
// The lock is held until the supervisor has accepted the stop, not while
// the guest powers off: a kill may overtake a slow stop.
func (s *Store) Stop(ctx context.Context, name string, grace time.Duration) (v *VM, changed bool, err error) {
	unlock, err := s.Lock(ctx, name, "kitrun stop")
	if err != nil {
		return nil, false, err
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	if v, err = s.get(name, true); err != nil || !v.Running() {
		return v, false, err
	}
	if grace <= 0 {
		grace = time.Duration(v.Meta.Grace)
	}
	c, err := s.dial(ctx, name)
	if err != nil {
		return s.afterLostContact(name, v, err, true)
	}
	defer c.Close()
	if err := c.send(request{Op: OpStop, Timeout: Duration(grace)}); err != nil {
		return s.afterLostContact(name, v, err, true)
	}
	if _, err := c.recv(OpStop, recvDeadline(ctx, opDeadline)); err != nil {
		return s.afterLostContact(name, v, err, true)
	}
	unlock()
	locked = false
	r, err := c.recv(OpStop, recvDeadline(ctx, grace+teardownMargin))
	if err != nil {
		return s.afterLostContact(name, v, err, false)
	}
	v.State = *r.State
	return v, true, nil
}

// afterLostContact reads the VM again when its supervisor stopped answering:
// it may have ended meanwhile (fine), or be hung (the error stands).
func (s *Store) afterLostContact(name string, v *VM, err error, locked bool) (*VM, bool, error) {
	time.Sleep(50 * time.Millisecond) // let a supervisor that is finishing remove its socket
	v2, gerr := s.get(name, locked)
	if gerr != nil {
		return v, false, errors.Join(err, gerr)
	}
	if !v2.Running() {
		return v2, true, nil
	}
	var se *StateError
	if errors.As(err, &se) {
		return v2, false, err
	}
	return v2, false, fmt.Errorf("%w; `kitrun kill %s` ends it", err, name)
}

// Kill ends the VM at once. changed is false when it was not running.
func (s *Store) Kill(ctx context.Context, name string) (*VM, bool, error) {
	unlock, err := s.Lock(ctx, name, "kitrun kill")
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	v, err := s.get(name, true)
	if err != nil || !v.Running() {
		return v, false, err
	}
	return s.killLocked(ctx, v, "killed by kitrun kill")
}

// killLocked kills a running VM through its supervisor, or, if that does
// not answer, kills the supervisor and QEMU by their (verified) pids.
func (s *Store) killLocked(ctx context.Context, v *VM, reason string) (*VM, bool, error) {
	c, err := s.dial(ctx, v.Name)
	if err == nil {
		defer c.Close()
		if err = c.send(request{Op: OpKill, Reason: reason}); err == nil {
			if _, err = c.recv(OpKill, recvDeadline(ctx, opDeadline)); err == nil {
				var r *response
				if r, err = c.recv(OpKill, recvDeadline(ctx, teardownMargin)); err == nil {
					v.State = *r.State
					return v, true, nil
				}
			}
		}
	}
	// No answer: it may just have ended.
	if v2, gerr := s.get(v.Name, true); gerr == nil && !v2.Running() {
		return v2, true, nil
	}
	st := v.State
	killVerified(st.SupervisorPID, st.SupervisorStart, 5*time.Second)
	s.destroyMachine(v)
	// The supervisor may have recorded its end after all.
	if v2, gerr := s.get(v.Name, true); gerr == nil && !Running(v2.State.State) && !v2.Corrected {
		return v2, true, nil
	}
	st.State, st.Reason, st.Stopped = Stopped, fmt.Sprintf("%s (its supervisor did not answer: %v)", reason, err), time.Now()
	if werr := s.WriteState(v.Name, st); werr != nil {
		return v, true, werr
	}
	v.State, v.Corrected = st, false
	return v, true, nil
}

// Pause stops the VM's virtual CPUs (a ready VM only).
func (s *Store) Pause(ctx context.Context, name string) (*VM, error) {
	return s.simpleOp(ctx, name, OpPause, "kitrun pause")
}

// Resume restarts a paused VM's virtual CPUs.
func (s *Store) Resume(ctx context.Context, name string) (*VM, error) {
	return s.simpleOp(ctx, name, OpResume, "kitrun resume")
}

func (s *Store) simpleOp(ctx context.Context, name, op, what string) (*VM, error) {
	unlock, err := s.Lock(ctx, name, what)
	if err != nil {
		return nil, err
	}
	defer unlock()
	v, err := s.get(name, true)
	if err != nil {
		return v, err
	}
	if !v.Running() {
		return v, &StateError{Name: name, State: v.State.State, Op: op, Hint: reasonHint(v)}
	}
	r, err := s.call(ctx, name, request{Op: op}, opDeadline)
	if err != nil {
		return v, err
	}
	v.State = *r.State
	return v, nil
}

func reasonHint(v *VM) string {
	if v.State.Reason != "" {
		return v.State.Reason
	}
	return ""
}

// Live is what a running VM's supervisor says of it now.
type Live struct {
	State State `json:"state"`
	// QEMUStatus is QEMU's run state (QMP query-status): running, paused…
	QEMUStatus string `json:"qemu_status,omitempty"`
	RSS        int64  `json:"rss_bytes,omitempty"`
}

// Live asks a running VM's supervisor for its status.
func (s *Store) Live(ctx context.Context, name string) (*Live, error) {
	r, err := s.call(ctx, name, request{Op: OpStatus}, opDeadline)
	if err != nil {
		return nil, err
	}
	return &Live{State: *r.State, QEMUStatus: r.Status, RSS: r.RSS}, nil
}

// Remove deletes a VM's state. A running VM needs force, which kills it
// first; so does one whose files are unreadable.
func (s *Store) Remove(ctx context.Context, name string, force bool) error {
	unlock, err := s.Lock(ctx, name, "kitrun rm")
	if err != nil {
		return err
	}
	defer unlock()
	v, err := s.get(name, true)
	var ce *CorruptError
	switch {
	case errors.As(err, &ce):
		if !force {
			return err
		}
		// What runs cannot be known from the files: ask the socket.
		if c, derr := s.dial(ctx, name); derr == nil {
			c.Close()
			s.killLocked(ctx, &VM{Name: name, Dir: s.VMDir(name), State: v.State}, "killed by kitrun rm -f")
		} else if Running(v.State.State) {
			killVerified(v.State.SupervisorPID, v.State.SupervisorStart, 5*time.Second)
			s.destroyMachine(v)
		}
	case err != nil:
		return err
	case v.Running():
		if !force {
			return &StateError{Name: name, State: v.State.State, Op: "remove", Hint: fmt.Sprintf("stop it first (`kitrun stop %s`) or use `kitrun rm -f %s`", name, name)}
		}
		if _, _, err := s.killLocked(ctx, v, "killed by kitrun rm -f"); err != nil {
			return err
		}
	}
	s.reapSupervisor(v.State)
	return s.removeDir(name)
}

// reapSupervisor waits for an ended VM's supervisor to exit (it does so
// right after recording the end), killing it if it lingers.
func (s *Store) reapSupervisor(st State) {
	if st.SupervisorPID == 0 {
		return
	}
	if !waitGone(st.SupervisorPID, st.SupervisorStart, 5*time.Second) {
		killVerified(st.SupervisorPID, st.SupervisorStart, 5*time.Second)
	}
}

// PruneResult says what Prune did.
type PruneResult struct {
	Removed []string
	// Skipped are VMs left alone, with why (unreadable, busy).
	Skipped map[string]error
}

// Prune removes every stopped or failed VM (after checking the truth: a VM
// whose supervisor died is failed), and leftovers of interrupted commands.
func (s *Store) Prune(ctx context.Context) (*PruneResult, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	res := &PruneResult{Skipped: map[string]error{}}
	for _, name := range names {
		if err := s.pruneOne(ctx, name); err != nil {
			var nf *NotFoundError
			if !errors.As(err, &nf) {
				res.Skipped[name] = err
			}
			continue
		}
		res.Removed = append(res.Removed, name)
	}
	s.cleanLeftovers(time.Hour)
	return res, nil
}

var errRunning = errors.New("running")

func (s *Store) pruneOne(ctx context.Context, name string) error {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	unlock, err := s.Lock(lctx, name, "kitrun prune")
	if err != nil {
		return err
	}
	defer unlock()
	v, err := s.get(name, true)
	if err != nil {
		return err
	}
	if v.Running() {
		return errRunning
	}
	s.reapSupervisor(v.State)
	return s.removeDir(name)
}

// IsRunningSkip says a prune skipped a VM because it runs.
func IsRunningSkip(err error) bool { return errors.Is(err, errRunning) }

// AttachOptions configure Attach.
type AttachOptions struct {
	// DetachKey, when not 0, ends the session when read from the input.
	DetachKey byte
}

// ErrDetached: the user detached from the console.
var ErrDetached = errors.New("detached")

// Attach connects in and out to the guest console until the VM ends (nil),
// the user types the detach key (ErrDetached) or ctx ends. The end of in
// stops the input only; the output goes on.
func (s *Store) Attach(ctx context.Context, name string, in io.Reader, out io.Writer, o AttachOptions) error {
	v, err := s.Get(name)
	if err != nil {
		return err
	}
	if !v.Running() {
		return &StateError{Name: name, State: v.State.State, Op: "attach to", Hint: fmt.Sprintf("`kitrun logs %s` shows its console", name)}
	}
	c, err := s.dial(ctx, name)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.send(request{Op: OpAttach}); err != nil {
		return err
	}
	if _, err := c.recv(OpAttach, recvDeadline(ctx, opDeadline)); err != nil {
		return err
	}
	outDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, c.br)
		outDone <- err
	}()
	detached := make(chan struct{})
	if in != nil {
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := in.Read(buf)
				p := buf[:n]
				if o.DetachKey != 0 {
					for i, b := range p {
						if b == o.DetachKey {
							c.conn.Write(p[:i])
							close(detached)
							return
						}
					}
				}
				if len(p) > 0 {
					c.conn.SetWriteDeadline(time.Now().Add(requestDeadline))
					if _, werr := c.conn.Write(p); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	select {
	case <-outDone:
		return nil
	case <-detached:
		return ErrDetached
	case <-ctx.Done():
		return ctx.Err()
	}
}
