package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// creatingGrace is how long a VM may stay "creating" without a supervisor
// pid before it counts as failed: the supervisor records itself at once.
const creatingGrace = time.Minute

// VM is what the store knows of one VM, checked against the host's processes.
type VM struct {
	Name  string
	Dir   string
	Meta  Meta
	State State
	// Err is set when meta.json or state.json is unreadable (a
	// *CorruptError); Meta and State then hold what could be read.
	Err error
	// Corrected says State differs from state.json: its supervisor is
	// gone and the file has not (yet) been updated.
	Corrected bool
	// StrayMachine is a machine still alive although its supervisor is
	// gone.
	StrayMachine bool
}

// Running says whether the VM's supervisor is (believed) alive.
func (v *VM) Running() bool { return v.Err == nil && Running(v.State.State) }

// truth checks a recorded running state against the host: a supervisor
// that is not alive, or whose pid is now another process's, or that ran
// before the host rebooted, makes the VM failed, with the reason.
func (sys system) truth(st State, created time.Time) (State, bool) {
	if !Running(st.State) {
		return st, false
	}
	fail := func(reason string) (State, bool) {
		st.State, st.Reason = Failed, reason
		if st.Stopped.IsZero() {
			st.Stopped = sys.now()
		}
		return st, true
	}
	if boot := sys.bootID(); st.BootID != "" && boot != "" && st.BootID != boot {
		return fail(fmt.Sprintf("the host rebooted while it ran (supervisor pid %d)", st.SupervisorPID))
	}
	if st.SupervisorPID == 0 {
		if st.State == Creating && sys.now().Sub(created) < creatingGrace {
			return st, false
		}
		return fail("its supervisor never started")
	}
	if ok, why := sys.alive(st.SupervisorPID, st.SupervisorStart); !ok {
		reason := fmt.Sprintf("supervisor died (pid %d)", st.SupervisorPID)
		if why == "its pid now belongs to another process" {
			reason = fmt.Sprintf("supervisor died (pid %d, now another process's)", st.SupervisorPID)
		}
		return fail(reason)
	}
	return st, false
}

// Get reads a VM and checks its state against the host (see truth). A
// correction is persisted if the VM's lock is free; unreadable files give a
// *CorruptError along with what could be read.
func (s *Store) Get(name string) (*VM, error) {
	return s.get(name, false)
}

// get: locked says the caller holds the VM's lock.
func (s *Store) get(name string, locked bool) (*VM, error) {
	if err := s.exists(name); err != nil {
		return nil, err
	}
	v := &VM{Name: name, Dir: s.VMDir(name)}
	m, merr := s.ReadMeta(name)
	st, serr := s.ReadState(name)
	v.Meta, v.State = m, st
	if err := errors.Join(merr, serr); err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			return nil, nf // removed while we read
		}
		if merr != nil {
			v.Err = merr
		} else {
			v.Err = serr
		}
		return v, v.Err
	}
	truth, changed := host.truth(st, m.Created)
	if !changed {
		return v, nil
	}
	v.State, v.Corrected = truth, true
	if s.machineAlive(v) {
		v.StrayMachine = true
	}
	if locked {
		s.settle(v)
		return v, nil
	}
	if unlock, ok, err := s.TryLock(name, "kitrun (recording a lost VM)"); err == nil && ok {
		// Read again under the lock: the supervisor may have finished
		// its own record in the meantime.
		if st2, err := s.ReadState(name); err == nil && st2.State == st.State && st2.Updated.Equal(st.Updated) {
			s.settle(v)
		} else if err == nil {
			v.State, _ = host.truth(st2, m.Created)
			v.Corrected = false
		}
		unlock()
	}
	return v, nil
}

// settle persists a corrected state and destroys a machine that survived
// its supervisor. The caller holds the lock.
func (s *Store) settle(v *VM) {
	if v.StrayMachine {
		if err := s.destroyMachine(v); err == nil {
			v.State.Reason += fmt.Sprintf("; its machine (%s %s) was still running and has been destroyed", v.Meta.Backend, v.State.MachineID)
		} else {
			v.State.Reason += fmt.Sprintf("; its machine (%s %s) is still running and could not be destroyed: %v", v.Meta.Backend, v.State.MachineID, err)
		}
		v.StrayMachine = false
	}
	if s.WriteState(v.Name, v.State) == nil {
		v.Corrected = false
	}
}

// List reads every VM (see Get). Unreadable VMs are listed with Err set.
func (s *Store) List() ([]*VM, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	var out []*VM
	for _, n := range names {
		v, err := s.Get(n)
		var nf *NotFoundError
		if errors.As(err, &nf) {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// Uptime is how long a running VM has run (0 when it is not running).
func (v *VM) Uptime() time.Duration {
	if !v.Running() || v.State.Started.IsZero() {
		return 0
	}
	return time.Since(v.State.Started)
}

// MachineRSS is the resident memory in bytes of the local process that
// runs the machine, while the VM runs (0 if not, or if the backend runs no
// local process).
func (v *VM) MachineRSS() int64 {
	if !v.Running() || v.State.MachinePID == 0 {
		return 0
	}
	if ok, _ := host.alive(v.State.MachinePID, v.State.MachineStart); !ok {
		return 0
	}
	return RSS(v.State.MachinePID)
}

// backend opens the backend that runs a VM.
func (s *Store) backend(v *VM) (hypervisor.Backend, error) {
	open := s.OpenBackend
	if open == nil {
		open = hypervisor.Open
	}
	return open(v.Meta.Backend, v.Meta.BackendOptions)
}

// machineAlive asks the VM's backend whether its machine still runs.
func (s *Store) machineAlive(v *VM) bool {
	if v.State.MachineID == "" {
		return false
	}
	b, err := s.backend(v)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), opDeadline)
	defer cancel()
	ok, err := b.Alive(ctx, v.State.MachineID)
	return err == nil && ok
}

// destroyMachine ends a VM's machine through its backend, from this
// process: the supervisor that started it is gone.
func (s *Store) destroyMachine(v *VM) error {
	if v.State.MachineID == "" {
		return nil
	}
	b, err := s.backend(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*opDeadline)
	defer cancel()
	return b.Destroy(ctx, v.State.MachineID)
}
