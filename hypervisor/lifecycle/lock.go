package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/flock"
)

// DefaultLockWait is how long a command waits for a VM's lock when its
// context has no deadline.
const DefaultLockWait = 10 * time.Second

// Lock takes the VM's lock (flock on D/NAME/lock), waiting at most
// DefaultLockWait or until ctx ends; then it fails with a BusyError naming
// the holder. what ("kitrun stop", …) is recorded for other waiters.
func (s *Store) Lock(ctx context.Context, name, what string) (unlock func(), err error) {
	if err := s.exists(name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultLockWait)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		unlock, ok, err := s.tryLock(name, what)
		if err != nil || ok {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			holder, _ := os.ReadFile(s.Path(name, LockFile))
			return nil, &BusyError{Name: name, Holder: strings.TrimSpace(string(holder)), Waited: time.Since(start)}
		case <-tick.C:
		}
	}
}

// TryLock takes the VM's lock if it is free at once.
func (s *Store) TryLock(name, what string) (unlock func(), ok bool, err error) {
	if err := s.exists(name); err != nil {
		return nil, false, err
	}
	return s.tryLock(name, what)
}

func (s *Store) tryLock(name, what string) (func(), bool, error) {
	path := s.Path(name, LockFile)
	// flock.TryLock locks the file that is at path now: the VM may have
	// been removed (its directory renamed away) while we waited.
	l, ok, err := flock.TryLock(path, flock.Exclusive, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, s.exists(name)
		}
		return nil, false, fmt.Errorf("VM %s: %w", name, err)
	}
	if !ok {
		return nil, false, nil
	}
	f := l.File()
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("%s, pid %d, since %s\n", what, os.Getpid(), time.Now().Format(time.TimeOnly))), 0)
	return func() {
		f.Truncate(0)
		l.Unlock()
	}, true, nil
}
