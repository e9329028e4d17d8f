//go:build linux

package kitinit

import (
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// BootUptime is the guest's CLOCK_BOOTTIME in seconds.
func BootUptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func itoa(i int) string { return strconv.Itoa(i) }

// console serialises writes to the console so that lines never interleave.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) write(s string) {
	if c.w == nil {
		return
	}
	c.mu.Lock()
	c.w.Write([]byte(s)) // a console that fails has nowhere to report to
	c.mu.Unlock()
}

// consoleChannel carries events on the console, where the host picks the
// framed lines out (initproto.ChannelConsole); each is one write under the
// console's lock, so no other line of kitinit's splits it.
type consoleChannel struct{ c *console }

func (c consoleChannel) Write(p []byte) (int, error) {
	c.c.write(string(p))
	return len(p), nil
}

func (consoleChannel) Read([]byte) (int, error) { return 0, io.EOF }

// emitter writes events to the channel, one write each, and a human line for
// each to the console. Events emitted before the channel is known (it is
// opened only after the channel modules are loaded) are queued.
type emitter struct {
	mu       sync.Mutex
	ch       io.Writer
	attached bool
	pending  [][]byte
	failed   bool
	con      *console
	uptime   func() float64
}

// emit sends ev; a zero Uptime means "now". The channel write comes first:
// the console (an emulated UART) is slower and only for humans.
func (e *emitter) emit(ev initproto.Event) {
	if ev.Uptime == 0 {
		ev.Uptime = e.uptime()
	}
	line := ev.Encode()
	e.mu.Lock()
	if e.attached {
		e.write(line)
	} else {
		e.pending = append(e.pending, line)
	}
	e.mu.Unlock()
	e.con.write(humanLine(ev))
}

func (e *emitter) write(line []byte) {
	if e.ch == nil {
		return
	}
	if _, err := e.ch.Write(line); err != nil && !e.failed {
		e.failed = true // say it once, not once per event
		e.con.write("kitinit: event channel: " + err.Error() + "\n")
	}
}

// attach sets the channel (nil: none) and flushes the queued events. Only
// the first call counts.
func (e *emitter) attach(w io.Writer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.attached {
		return
	}
	e.ch, e.attached = w, true
	for _, l := range e.pending {
		e.write(l)
	}
	e.pending = nil
}

func (e *emitter) errorf(format string, args ...any) {
	e.emit(initproto.Event{Kind: initproto.EvError, Detail: fmt.Sprintf(format, args...)})
}

// humanLine renders an event for the console, e.g.
// "kitinit: service web ready (0.812s)".
func humanLine(ev initproto.Event) string {
	var s string
	switch ev.Kind {
	case initproto.EvInitStart:
		s = "started"
	case initproto.EvModulesLoaded:
		s = "modules loaded"
	case initproto.EvNetworkUp:
		s = "network up"
	case initproto.EvTaskDone:
		s = "task " + ev.Name + " done"
	case initproto.EvTaskFailed:
		s = "task " + ev.Name + " failed"
	case initproto.EvServiceStart:
		s = "service " + ev.Name + " started"
	case initproto.EvServiceReady:
		s = "service " + ev.Name + " ready"
	case initproto.EvServiceExit:
		s = "service " + ev.Name + " exited"
	case initproto.EvServiceFailed:
		s = "service " + ev.Name + " failed"
	case initproto.EvAllReady:
		s = "all ready"
	case initproto.EvShutdown:
		s = "shutting down"
	case initproto.EvShutdownDone:
		s = "shutdown done"
	case initproto.EvError:
		s = "error"
	case initproto.EvReseeded:
		s = "reseeded after a snapshot restore"
	case initproto.EvMemory:
		s = fmt.Sprintf("memory: total %d MiB, available %d MiB",
			ev.Data["mem_total"]>>20, ev.Data["mem_available"]>>20)
	default:
		s = ev.Kind + " " + ev.Name
	}
	if ev.Detail != "" {
		s += ": " + ev.Detail
	}
	return fmt.Sprintf("kitinit: %s (%.3fs)\n", s, ev.Uptime)
}
