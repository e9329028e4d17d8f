package lifecycle

import (
	"errors"
	"fmt"
	"time"
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
	// StrayQEMU is a QEMU still alive although its supervisor is gone.
	StrayQEMU bool
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
	if ok, _ := host.alive(st.QEMUPID, st.QEMUStart); ok && st.QEMUStart != 0 {
		v.StrayQEMU = true
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

// settle persists a corrected state and kills a QEMU that survived its
// supervisor. The caller holds the lock.
func (s *Store) settle(v *VM) {
	if v.StrayQEMU {
		if killVerified(v.State.QEMUPID, v.State.QEMUStart, 5*time.Second) {
			v.State.Reason += fmt.Sprintf("; its QEMU (pid %d) was still running and has been killed", v.State.QEMUPID)
		}
		v.StrayQEMU = false
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

// QEMURSS is QEMU's resident memory in bytes while the VM runs (0 if not).
func (v *VM) QEMURSS() int64 {
	if !v.Running() {
		return 0
	}
	if ok, _ := host.alive(v.State.QEMUPID, v.State.QEMUStart); !ok {
		return 0
	}
	return RSS(v.State.QEMUPID)
}
