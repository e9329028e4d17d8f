package testcases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kitrun/kitrun/hypervisor/vm"
)

// Event is one event of a boot and the host's wall clock when it arrived.
type Event struct {
	At time.Time
	vm.Event
}

// Record is what the host saw of one boot: every event and the whole
// console, kept in memory for assertions and streamed to log files as it
// comes, so that a killed run still leaves them behind. It is the
// vm.Options.Console writer and OnEvent callback of the boot.
type Record struct {
	mu      sync.Mutex
	events  []Event
	lines   []string
	partial []byte
	changed chan struct{}
	console io.Writer // console.log, raw
	eventw  io.Writer // events.log, one line per event
	now     func() time.Time
}

// NewRecord returns a record that also writes the console and a line per
// event to the given writers (either may be nil).
func NewRecord(console, events io.Writer) *Record {
	return &Record{changed: make(chan struct{}), console: console, eventw: events, now: time.Now}
}

// broadcast wakes every waiter; r.mu is held.
func (r *Record) broadcast() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Write takes console output. Only the new bytes are scanned for line
// ends, so a console costs time in proportion to its length however it
// arrives.
func (r *Record) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.console != nil {
		// A failed write is the log's to report (see logfile); the
		// console is still recorded and matched.
		r.console.Write(p)
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		line := p[:i]
		if len(r.partial) > 0 {
			line = append(r.partial, line...)
			r.partial = r.partial[:0]
		}
		r.lines = append(r.lines, CleanLine(string(line)))
		p = p[i+1:]
	}
	r.partial = append(r.partial, p...)
	r.broadcast()
	return n, nil
}

// OnEvent takes an event of the machine.
func (r *Record) OnEvent(ev vm.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := Event{At: r.now(), Event: ev}
	r.events = append(r.events, e)
	if r.eventw != nil {
		io.WriteString(r.eventw, FormatEvent(e))
	}
	r.broadcast()
}

// FormatEvent renders an event as one line of events.log: wall clock, time
// since the hypervisor started, stage, then the guest's uptime and details.
func FormatEvent(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %+9.3fs %s", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.Host.Seconds(), e.Stage().String())
	if g := e.Guest; g != nil {
		fmt.Fprintf(&b, " guest=%.3fs", g.Uptime)
		if g.Status != nil {
			fmt.Fprintf(&b, " status=%d", *g.Status)
		}
		if g.Detail != "" {
			fmt.Fprintf(&b, " detail=%q", g.Detail)
		}
		for k, v := range g.Data {
			fmt.Fprintf(&b, " %s=%d", k, v)
		}
		for _, l := range g.Log {
			fmt.Fprintf(&b, "\n    | %s", l)
		}
	} else if e.Detail != "" {
		fmt.Fprintf(&b, " detail=%q", e.Detail)
	}
	b.WriteByte('\n')
	return b.String()
}

// Terminal control sequences the firmware and the kernel write (SeaBIOS
// resets the screen: ESC c, ESC [2J): CSI sequences, OSC strings and
// two-character escapes.
var escapes = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_a-z])`)

// CleanLine is a console line as text: without terminal control sequences,
// other control characters and invalid UTF-8, so that it can be matched,
// printed to a terminal and put in XML as it reads.
func CleanLine(s string) string {
	s = escapes.ReplaceAllString(strings.TrimRight(s, "\r"), "")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r == utf8.RuneError, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == 0xfffe, r == 0xffff:
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}

// Lines returns the console lines so far, an unfinished last line included.
func (r *Record) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.linesFrom(0)
}

// linesFrom copies the lines from index i on, with the unfinished last
// line; r.mu is held.
func (r *Record) linesFrom(i int) []string {
	out := append([]string(nil), r.lines[i:]...)
	if len(r.partial) > 0 {
		out = append(out, CleanLine(string(r.partial)))
	}
	return out
}

// Tail returns the console's last n lines.
func (r *Record) Tail(n int) []string {
	if n <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.partial) > 0 {
		n--
	}
	return r.linesFrom(max(len(r.lines)-n, 0))
}

// Events returns the events so far.
func (r *Record) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// errExited is what a wait returns when the machine went away before the
// condition held.
var errExited = errors.New("the machine exited")

// Update is what a Wait condition is given: what arrived since its
// previous call (everything so far, the first time). Each event and each
// finished console line comes once, so that waiting costs time in
// proportion to what arrives, not to what arrived before; a condition that
// needs the history keeps its own state.
type Update struct {
	// Events are the new events, in arrival order.
	Events []Event
	// Lines are the console lines finished since the previous call.
	Lines []string
	// FirstLine is the number (from 1) of Lines[0] in the console.
	FirstLine int
	// Partial is the console's unfinished last line when it changed since
	// the previous call (else ""), for prompts that end no line. It comes
	// again, whole, in Lines once its line ends. An unfinished line longer
	// than maxPartial is not given until it ends: matching a growing line
	// on every write would cost time in the square of its length.
	Partial string
}

// maxPartial bounds the unfinished line a Wait condition is given.
const maxPartial = 4 << 10

// Wait calls cond with what arrived, first at once and then after each
// change, until it reports done or an error, ctx ends, or the machine has
// exited (exited closed) and a last look found nothing.
func (r *Record) Wait(ctx context.Context, exited <-chan struct{}, cond func(Update) (bool, error)) error {
	gone := false
	nEvents, nLines, nPartial := 0, 0, 0
	for {
		r.mu.Lock()
		u := Update{Events: r.events[nEvents:], Lines: r.lines[nLines:], FirstLine: nLines + 1}
		if len(r.partial) != nPartial {
			nPartial = len(r.partial)
			if nPartial > 0 && nPartial <= maxPartial {
				u.Partial = CleanLine(string(r.partial))
			}
		}
		changed := r.changed
		r.mu.Unlock()
		// The slices are shared with the record, which only ever appends.
		nEvents += len(u.Events)
		nLines += len(u.Lines)
		done, err := cond(u)
		if err != nil || done {
			return err
		}
		if gone {
			return errExited
		}
		select {
		case <-changed:
		case <-exited:
			gone = true
			exited = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
