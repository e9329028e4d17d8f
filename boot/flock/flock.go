// Package flock owns kitrun's advisory file locks between processes: one
// writer of a kernel-cache extraction at a time, one command changing a VM
// at a time, and images of the image cache that a live process uses and no
// cleanup may remove.
//
// A lock is flock(2) on a lock file. The kernel drops it when its holder
// dies, however it dies, so a lock never outlives a crashed process. A lock
// is always on the file that is at the path now: a holder may remove or
// replace the lock file (removing what it guarded), and whoever was waiting
// on the old file then retries on the new one instead of holding a lock
// nobody else can see.
package flock

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Mode says whether a lock excludes everyone or only exclusive holders.
type Mode int

const (
	// Exclusive: one holder, no shared ones.
	Exclusive Mode = iota
	// Shared: any number of shared holders, no exclusive one.
	Shared
)

func (m Mode) String() string {
	if m == Shared {
		return "shared"
	}
	return "exclusive"
}

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// File is the open lock file, for holders that record who they are in it.
func (l *Lock) File() *os.File { return l.f }

// Unlock releases the lock. It is safe to call more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// TryLock takes the lock on path (created with perm when missing) if it is
// free now. ok is false when another process holds it in a conflicting
// mode; err is for everything else (a missing directory among them: it
// wraps fs.ErrNotExist).
func TryLock(path string, mode Mode, perm os.FileMode) (l *Lock, ok bool, err error) {
	// A few rounds: each is lost only to a holder that removed the lock
	// file between our open and our flock.
	for range 100 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
		if err != nil {
			return nil, false, fmt.Errorf("lock %s: %w", path, err)
		}
		got, err := tryFlock(f, mode)
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("lock %s: %w", path, err)
		}
		if !got {
			f.Close()
			return nil, false, nil
		}
		if samePath(f, path) {
			return &Lock{f: f}, true, nil
		}
		f.Close() // removed or replaced while we waited: lock the new one
	}
	return nil, false, nil
}

// Wait takes the lock on path, polling until it is free or ctx ends.
func Wait(ctx context.Context, path string, mode Mode, perm os.FileMode) (*Lock, error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		l, ok, err := TryLock(path, mode, perm)
		if err != nil || ok {
			return l, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the %s lock %s: %w", mode, path, ctx.Err())
		case <-t.C:
		}
	}
}
