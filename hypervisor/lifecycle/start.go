package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// SupervisorArgs are the arguments that make the kitrun binary supervise
// the VM name of the store at dir, reporting on fd 3.
func SupervisorArgs(dir, name string) []string {
	return []string{"supervise", "--state-dir", dir, "--report-fd", "3", name}
}

// StartOptions configure Start.
type StartOptions struct {
	// Exe is the kitrun binary; its hidden `supervise` command runs the VM.
	Exe string
	// Wait bounds the wait for ready or failure (default: the boot
	// timeout plus a minute).
	Wait time.Duration
	// OnBooting is called once QEMU has started.
	OnBooting func(Report)
}

// BootError is a detached boot that failed; Failure is its kind
// (FailBootTimeout, …) and Message the whole error, console lines included.
type BootError struct {
	Name    string
	Failure string
	Message string
}

func (e *BootError) Error() string { return e.Message }

// Start records the VM m (see Create), starts its supervisor detached and
// waits until the VM is ready (the report holds the boot timeline) or has
// failed (a *BootError). If ctx ends first the VM is stopped.
func (s *Store) Start(ctx context.Context, m Meta, o StartOptions) (*Report, error) {
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	if err := s.Create(m, State{State: Creating}); err != nil {
		return nil, err
	}
	name := m.Name
	fail := func(err error) (*Report, error) {
		s.markFailed(name, err)
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	logf, err := os.OpenFile(s.Path(name, SupervisorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		w.Close()
		return fail(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		logf.Close()
		return fail(err)
	}
	cmd := exec.Command(o.Exe, SupervisorArgs(s.Dir, name)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.Dir = "/"
	detach(cmd)
	err = cmd.Start()
	w.Close()
	logf.Close()
	devnull.Close()
	if err != nil {
		return fail(fmt.Errorf("starting the supervisor %s: %w", o.Exe, err))
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()

	wait := o.Wait
	if wait <= 0 {
		wait = time.Duration(m.BootTimeout) + time.Minute
	}
	r.SetReadDeadline(time.Now().Add(wait))
	stopWatch := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	defer stopWatch()
	br := bufio.NewReader(r)
	for {
		line, err := readLine(br)
		if err != nil {
			if ctx.Err() != nil {
				// Interrupted: the supervisor stops the VM gracefully on
				// SIGTERM, as on `kitrun stop`.
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(time.Duration(m.Grace) + teardownMargin):
					cmd.Process.Kill()
				}
				s.markFailed(name, errors.New("interrupted before it was ready"))
				return nil, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, fmt.Errorf("VM %s: its supervisor (pid %d) reported neither ready nor failure within %s; see %s", name, cmd.Process.Pid, wait, s.Path(name, SupervisorLog))
			}
			// The report pipe closed without a verdict.
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
			return nil, s.lostSupervisor(name, cmd.Process.Pid)
		}
		var rep Report
		if err := json.Unmarshal(line, &rep); err != nil {
			continue
		}
		switch rep.Event {
		case "booting":
			if o.OnBooting != nil {
				o.OnBooting(rep)
			}
		case "ready":
			return &rep, nil
		case "failed":
			return &rep, &BootError{Name: name, Failure: rep.Failure, Message: rep.Error}
		}
	}
}

// lostSupervisor explains a supervisor that ended without a verdict.
func (s *Store) lostSupervisor(name string, pid int) error {
	tail := logTail(s.Path(name, SupervisorLog), 10)
	v, err := s.Get(name)
	if err == nil && !v.Running() {
		kind := v.State.Failure
		if kind == "" {
			kind = FailError
		}
		return &BootError{Name: name, Failure: kind, Message: fmt.Sprintf("VM %s %s: %s%s", name, v.State.State, v.State.Reason, tail)}
	}
	err = fmt.Errorf("VM %s: its supervisor (pid %d) exited before the VM was ready%s", name, pid, tail)
	s.markFailed(name, err)
	return err
}

// markFailed records a VM that could not be started, unless its supervisor
// recorded something itself.
func (s *Store) markFailed(name string, cause error) {
	unlock, err := s.Lock(context.Background(), name, "kitrun run -d")
	if err != nil {
		return
	}
	defer unlock()
	st, err := s.ReadState(name)
	if err == nil && st.State != Creating {
		return
	}
	s.WriteState(name, State{State: Failed, Failure: FailError, Reason: firstLine(cause.Error()), Stopped: time.Now()})
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n--- " + path + " ---\n" + strings.Join(lines, "\n")
}
