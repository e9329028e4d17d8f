package lifecycle

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/logfile"
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

// openRotating opens a VM's log for appending, rotated at limit
// (DefaultConsoleLimit when <= 0).
func openRotating(path string, limit int64) (*logfile.File, error) {
	if limit <= 0 {
		limit = DefaultConsoleLimit
	}
	return logfile.Open(path, logfile.Options{Limit: limit, Append: true})
}

// keepGoing writes to a log and never fails: the console must reach
// attached clients whatever happened to its file (the log remembers its
// error).
type keepGoing struct{ w io.Writer }

func (k keepGoing) Write(p []byte) (int, error) {
	k.w.Write(p)
	return len(p), nil
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
	w  *logfile.File
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
