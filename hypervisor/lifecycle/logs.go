package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultConsoleLimit is the size at which console.log is rotated to
// console.log.1 (one old file is kept); events.log rotates likewise at
// DefaultEventsLimit. A guest that floods either costs at most twice that
// on disk.
const (
	DefaultConsoleLimit = 8 << 20
	DefaultEventsLimit  = 4 << 20
)

// maxEventField bounds one field of an events.log line (a service's last
// output lines come along with its failure).
const maxEventField = 4 << 10

// rotatingFile is an append-only log rotated at a size limit. The console
// must never stall on it: errors are remembered, not returned.
type rotatingFile struct {
	mu    sync.Mutex
	path  string
	limit int64
	f     *os.File
	size  int64
	err   error
}

// RotatingLog is a log file rotated to PATH.1 at a size limit, so that a
// guest that floods it costs at most twice the limit on disk. Writes never
// fail (the console must not stall on its log): Err says what went wrong.
type RotatingLog = rotatingFile

// CreateRotating starts a new rotating log at path (an older file there is
// truncated) rotated at limit bytes (DefaultConsoleLimit when <= 0).
func CreateRotating(path string, limit int64) (*RotatingLog, error) {
	if err := os.Truncate(path, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return openRotating(path, limit)
}

func openRotating(path string, limit int64) (*rotatingFile, error) {
	if limit <= 0 {
		limit = DefaultConsoleLimit
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingFile{path: path, limit: limit, f: f, size: st.Size()}, nil
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return len(p), nil
	}
	if r.size > 0 && r.size+int64(len(p)) > r.limit {
		r.rotate()
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil && r.err == nil {
		r.err = err
	}
	return len(p), nil
}

func (r *rotatingFile) rotate() {
	r.f.Close()
	if err := os.Rename(r.path, r.path+".1"); err != nil && r.err == nil {
		r.err = err
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		r.f = nil
		return
	}
	r.f, r.size = f, 0
}

// Err is the first write error met.
func (r *rotatingFile) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// fanout copies the console to attached clients. A client that cannot keep
// up is dropped rather than stalling the console.
type fanout struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
	closed  bool
}

const clientBacklog = 1024

func (f *fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.clients {
		select {
		case c <- append([]byte(nil), p...):
		default:
			delete(f.clients, c)
			close(c)
		}
	}
	return len(p), nil
}

// add registers a client; its channel is closed when the client is dropped
// or the console ends. ok is false once the console has ended.
func (f *fanout) add() (chan []byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false
	}
	if f.clients == nil {
		f.clients = map[chan []byte]struct{}{}
	}
	c := make(chan []byte, clientBacklog)
	f.clients[c] = struct{}{}
	return c, true
}

func (f *fanout) remove(c chan []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.clients[c]; ok {
		delete(f.clients, c)
		close(c)
	}
}

func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for c := range f.clients {
		delete(f.clients, c)
		close(c)
	}
}

// eventLog is events.log: one line per event, tab-separated: host time
// (RFC 3339, UTC, nanoseconds), kind, name, detail; "-" for an empty field.
type eventLog struct {
	mu sync.Mutex
	w  *rotatingFile
}

func openEventLog(path string, limit int64) (*eventLog, error) {
	if limit <= 0 {
		limit = DefaultEventsLimit
	}
	f, err := openRotating(path, limit)
	if err != nil {
		return nil, err
	}
	return &eventLog{w: f}, nil
}

// Err is the first write error met.
func (l *eventLog) Err() error { return l.w.Err() }

func (l *eventLog) add(t time.Time, kind, name, detail string) {
	if l == nil {
		return
	}
	line := fmt.Sprintf("%s\t%s\t%s\t%s\n", t.UTC().Format(time.RFC3339Nano), field(kind), field(name), field(detail))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write([]byte(line))
}

func (l *eventLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Close()
}

// field makes a value fit one field of one line.
func field(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "-"
	}
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n", " | ")
	s = strings.ReplaceAll(s, "\t", " ")
	if len(s) > maxEventField {
		s = fmt.Sprintf("%s … [%d bytes cut]", s[:maxEventField], len(s)-maxEventField)
	}
	return s
}

// EventLine is one parsed line of events.log.
type EventLine struct {
	Time   time.Time
	Kind   string
	Name   string
	Detail string
}

// ParseEventLine reads a line of events.log.
func ParseEventLine(line string) (EventLine, error) {
	f := strings.SplitN(strings.TrimRight(line, "\n"), "\t", 4)
	if len(f) != 4 {
		return EventLine{}, fmt.Errorf("bad events.log line %q", line)
	}
	t, err := time.Parse(time.RFC3339Nano, f[0])
	if err != nil {
		return EventLine{}, fmt.Errorf("bad events.log line %q: %v", line, err)
	}
	unfield := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	return EventLine{Time: t, Kind: f[1], Name: unfield(f[2]), Detail: unfield(f[3])}, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
