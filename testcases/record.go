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

// Write takes console output.
func (r *Record) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.console != nil {
		r.console.Write(p)
	}
	r.partial = append(r.partial, p...)
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		r.lines = append(r.lines, CleanLine(string(r.partial[:i])))
		r.partial = r.partial[i+1:]
	}
	r.broadcast()
	return len(p), nil
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
	out := append([]string(nil), r.lines...)
	if len(r.partial) > 0 {
		out = append(out, CleanLine(string(r.partial)))
	}
	return out
}

// Tail returns the console's last n lines.
func (r *Record) Tail(n int) []string {
	l := r.Lines()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
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

// Wait calls cond with the events and console lines seen so far, and again
// after each change, until it reports done or an error, ctx ends, or the
// machine has exited (exited closed) and a last look found nothing.
func (r *Record) Wait(ctx context.Context, exited <-chan struct{}, cond func(events []Event, lines []string) (bool, error)) error {
	gone := false
	for {
		r.mu.Lock()
		events, lines, changed := r.events, r.lines, r.changed
		if len(r.partial) > 0 {
			lines = append(lines[:len(lines):len(lines)], CleanLine(string(r.partial)))
		}
		r.mu.Unlock()
		done, err := cond(events, lines)
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
