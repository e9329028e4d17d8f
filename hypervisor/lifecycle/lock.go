package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, s.exists(name)
		}
		return nil, false, fmt.Errorf("VM %s: lock: %w", name, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("VM %s: flock %s: %w", name, path, err)
	}
	// The VM may have been removed (its directory renamed away) between
	// open and flock: the lock must be on the file that is there now.
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		if err := s.exists(name); err != nil {
			return nil, false, err
		}
		return nil, false, nil // replaced: try again
	}
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("%s, pid %d, since %s\n", what, os.Getpid(), time.Now().Format(time.TimeOnly))), 0)
	return func() {
		f.Truncate(0)
		f.Close() // releases the flock
	}, true, nil
}
