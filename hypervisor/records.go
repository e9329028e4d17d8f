package hypervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/runtimedir"
)

// A local QEMU dies with the kitrun process that started it (its
// parent-death signal); a Hyper-V VM or a cloud instance does not. So that
// such a machine never outlives a kitrun killed with SIGKILL either, the
// process records each one it starts (backend, options, machine ID) in its
// runtime directory for as long as the machine runs; the next kitrun start
// finds the records of a process that is gone and destroys those machines
// through their backend (boot/runtimedir's sweep, with the reaper below).

// machineRecordKind is the runtime directory record kind of machines.
const machineRecordKind = "machines"

// machineReapTimeout bounds the destruction of one machine left behind.
const machineReapTimeout = 30 * time.Second

type machineRecord struct {
	Backend string  `json:"backend"`
	Options Options `json:"options,omitempty"`
	ID      string  `json:"id"`
}

// opened remembers how each backend made by Open was made, so that its
// machines can be recorded with what another process needs to reopen it.
var opened sync.Map // Backend → machineRecord (without ID)

func rememberOpened(b Backend, name string, opts Options) {
	if t := reflect.TypeOf(b); t != nil && t.Comparable() {
		opened.Store(b, machineRecord{Backend: name, Options: maps.Clone(opts)})
	}
}

// TrackMachine records m, started by b, until forget is called (when m is
// gone), so that if this process dies first the next kitrun start destroys
// it. Machines that die with this process (a local hypervisor process:
// Info.Process is set) and backends not made by Open (a test's own
// instance, which no other process could reopen) are not recorded.
func TrackMachine(b Backend, m Machine) (forget func(), err error) {
	info := m.Info()
	rec, ok := opened.Load(b)
	if !ok || info.Process != nil || info.ID == "" {
		return func() {}, nil
	}
	r := rec.(machineRecord)
	r.ID = info.ID
	data, err := json.Marshal(r)
	if err != nil {
		return func() {}, err
	}
	drop, err := runtimedir.Record(machineRecordKind, data)
	if err != nil {
		return func() {}, fmt.Errorf("recording machine %s: %w", info.ID, err)
	}
	return func() { drop() }, nil
}

func init() { runtimedir.RegisterReaper(machineRecordKind, reapMachines) }

// reapMachines destroys the machines a dead kitrun process left running.
func reapMachines(records [][]byte) (left [][]byte, err error) {
	var errs []error
	for _, data := range records {
		var r machineRecord
		if json.Unmarshal(data, &r) != nil || r.Backend == "" || r.ID == "" {
			continue // not a record this kitrun can act on: dropped
		}
		b, err := Open(r.Backend, r.Options)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), machineReapTimeout)
			err = b.Destroy(ctx, r.ID)
			cancel()
		}
		if err != nil {
			left = append(left, data)
			errs = append(errs, fmt.Errorf("%s machine %s still runs (destroy it, or `kitrun ps` tries again): %w", r.Backend, r.ID, err))
		}
	}
	return left, errors.Join(errs...)
}
