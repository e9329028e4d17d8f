// Package logfile owns the logs kitrun writes while something runs — a
// test's console.log and events.log, `kitrun run --console-log` — so that
// none is lost without a word: a log is appended as output comes, synced
// when closed, and it remembers its first failed write (a full disk, a
// vanished directory), which Close returns for the caller to report.
//
// A failed write does not stop what produces the output: the guest console
// must still be read and matched. The log drops what comes after a failure.
//
// A log may rotate (Options.Limit): past the limit, PATH becomes PATH.1 (one
// older file is kept) and a new PATH starts, so that a guest flooding its
// console costs at most twice the limit on disk.
package logfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// File is a log being written. It is safe for concurrent use.
type File struct {
	mu    sync.Mutex
	f     *os.File
	path  string
	err   error
	limit int64
	size  int64
}

// Options shape a log.
type Options struct {
	// Limit is the size at which the log rotates; 0: never.
	Limit int64
	// Append continues an existing log instead of truncating it.
	Append bool
}

// Create creates (or truncates) the log at path.
func Create(path string) (*File, error) { return Open(path, Options{}) }

// Open opens the log at path as o says.
func Open(path string, o Options) (*File, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if o.Append {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	l := &File{f: f, path: path, limit: o.Limit}
	if st, err := f.Stat(); err == nil {
		l.size = st.Size()
	}
	return l, nil
}

// rotate moves the log to PATH.1 and starts a new one; the caller holds mu.
func (l *File) rotate() error {
	l.f.Close()
	l.f = nil
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

// Path is where the log is written.
func (l *File) Path() string { return l.path }

// Write appends p. After a failure it drops p and returns the first error.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	if l.f == nil {
		l.err = fmt.Errorf("writing log %s: written after Close", l.path)
		return 0, l.err
	}
	if l.limit > 0 && l.size > 0 && l.size+int64(len(p)) > l.limit {
		if err := l.rotate(); err != nil {
			l.err = fmt.Errorf("rotating log %s: %w (what follows is not in it)", l.path, plain(err))
			return 0, l.err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if err != nil {
		l.err = fmt.Errorf("writing log %s: %w (what follows is not in it)", l.path, plain(err))
		return n, l.err
	}
	return n, nil
}

// Err is the first failed write, nil if none.
func (l *File) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close syncs and closes the log. It returns the first failed write, or
// the failure to sync or close: any error means the log is incomplete.
// Closing twice returns the first answer.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return l.err
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if l.err == nil && err != nil {
		l.err = fmt.Errorf("writing log %s: %w", l.path, plain(err))
	}
	return l.err
}

// plain drops the path from an error about the log, which names it already.
func plain(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
