package runtimedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/kitrun/kitrun/boot/atomicfile"
)

// Records are what a process keeps alive outside itself and must be ended
// if it dies first, beyond process groups: a virtual machine on a backend
// whose machines outlive the process that started them (Hyper-V, a cloud),
// for instance. A record is an opaque blob of a kind, kept in the process's
// runtime directory while the thing lives; the package that writes a kind
// registers a Reaper for it, which a sweep calls with the records a dead
// process left.
//
// A sweep removes a dead process's directory only once every record in it
// is reaped: a kind without a reaper in the sweeping process (a library
// user's process lacking the kitrun CLI's backends), or a reap that fails
// (the platform unreachable), leaves the directory for a later sweep.

// recordsDir holds one subdirectory per kind, one file per record.
const recordsDir = "records"

// A Reaper ends the things a dead process recorded under its kind. It
// returns the records it could not end, with why; those are kept.
type Reaper func(records [][]byte) (left [][]byte, err error)

var (
	reapersMu sync.Mutex
	reapers   = map[string]Reaper{}
)

// RegisterReaper makes reap end the records of kind that a sweep finds
// (nil: none does).
func RegisterReaper(kind string, reap Reaper) {
	reapersMu.Lock()
	defer reapersMu.Unlock()
	if reap == nil {
		delete(reapers, kind)
		return
	}
	reapers[kind] = reap
}

func reaperOf(kind string) Reaper {
	reapersMu.Lock()
	defer reapersMu.Unlock()
	return reapers[kind]
}

// Record keeps rec, of kind, in this process's runtime directory until the
// returned forget is called (when the thing it names has ended).
func Record(kind string, rec []byte) (forget func() error, err error) {
	return def().Record(kind, rec)
}

func (r *root) Record(kind string, rec []byte) (func() error, error) {
	if !validKind(kind) {
		return nil, fmt.Errorf("runtimedir: bad record kind %q", kind)
	}
	dir, err := r.Dir()
	if err != nil {
		return nil, err
	}
	kd := filepath.Join(dir, recordsDir, kind)
	if err := os.MkdirAll(kd, 0o700); err != nil {
		return nil, fmt.Errorf("recording a %s: %w", kind, err)
	}
	var id [8]byte
	rand.Read(id[:])
	p := filepath.Join(kd, hex.EncodeToString(id[:]))
	if err := atomicfile.Write(p, rec, 0o600); err != nil {
		return nil, fmt.Errorf("recording a %s: %w", kind, err)
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			if err = os.Remove(p); errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		})
		return err
	}, nil
}

func validKind(kind string) bool {
	if kind == "" || kind == "." || kind == ".." {
		return false
	}
	for _, c := range kind {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// reapRecords ends the records in a dead process's directory and removes
// those reaped. It says whether none is left, and why not.
func reapRecords(dir string) (bool, error) {
	kinds, err := os.ReadDir(filepath.Join(dir, recordsDir))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	var errs []error
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		kd := filepath.Join(dir, recordsDir, k.Name())
		files, _ := os.ReadDir(kd)
		var names []string
		var recs [][]byte
		for _, f := range files {
			if _, isTemp := atomicfile.TempOf(f.Name()); isTemp || f.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(kd, f.Name()))
			if err != nil {
				continue
			}
			names, recs = append(names, f.Name()), append(recs, b)
		}
		if len(recs) == 0 {
			continue
		}
		reap := reaperOf(k.Name())
		if reap == nil {
			errs = append(errs, fmt.Errorf("%d %s record(s) and nothing here to end them", len(recs), k.Name()))
			continue
		}
		left, err := reap(recs)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k.Name(), err))
		}
		keep := map[string]bool{}
		for _, l := range left {
			keep[string(l)] = true
		}
		for i, n := range names {
			if !keep[string(recs[i])] {
				os.Remove(filepath.Join(kd, n))
			}
		}
	}
	if len(errs) > 0 {
		return false, errors.Join(errs...)
	}
	return true, nil
}
