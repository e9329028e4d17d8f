package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// Limits on what a guest can make kitrun hold.
const (
	// maxConsoleLine is the longest console line kept (for the tail and
	// the checks); longer lines are cut, with a note of how much.
	maxConsoleLine = 4096
	// consoleKept is how many console lines are kept for error reports.
	consoleKept = 200
)

// consoleReader reads the guest console: it passes the bytes on to the
// user's writer as they come, keeps the last lines, marks the firmware's
// and the kernel's first output, spots kernel panics, and, where the event
// channel shares the console, takes kitinit's framed event lines out.
type consoleReader struct {
	out     io.Writer
	shared  bool
	since   func() time.Duration
	deliver func(Event)
	ring    *lineRing

	line     []byte // the current line, up to maxConsoleLine
	cut      int    // bytes of the current line beyond maxConsoleLine
	held     []byte // bytes of a line that may be an event, not yet passed on
	anyByte  bool
	kernel   bool
	outBroke bool
}

func newConsoleReader(out io.Writer, shared bool, since func() time.Duration, deliver func(Event)) *consoleReader {
	return &consoleReader{out: out, shared: shared, since: since, deliver: deliver, ring: newLineRing(consoleKept)}
}

func (c *consoleReader) run(r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.feed(buf[:n])
		}
		if err != nil {
			c.endLine(false)
			return
		}
	}
}

// feed processes one chunk as it arrived.
func (c *consoleReader) feed(p []byte) {
	if !c.anyByte {
		c.anyByte = true
		c.deliver(Event{Host: c.since(), Kind: StageFirmware})
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i+1]
		}
		p = p[len(seg):]
		c.add(seg)
		if i >= 0 {
			c.endLine(true)
		} else {
			c.pass(false)
		}
	}
}

func (c *consoleReader) add(seg []byte) {
	limit := maxConsoleLine
	if c.mayBeEvent() {
		limit = initproto.MaxLine // a framed event may be longer than a console line
	}
	room := limit - len(c.line)
	if room > len(seg) {
		room = len(seg)
	}
	if room > 0 {
		c.line = append(c.line, seg[:room]...)
	}
	c.cut += len(seg) - room
	if c.mayBeEvent() {
		c.held = append(c.held, seg...)
	} else {
		c.held = append(c.held, seg...)
		c.pass(false)
	}
}

// mayBeEvent says whether the current line could still turn out to be a
// framed event (only where the channel shares the console).
func (c *consoleReader) mayBeEvent() bool {
	if !c.shared || c.cut > 0 {
		return false
	}
	l := bytes.TrimLeft(c.line, "\r")
	if len(l) < len(initproto.Prefix) {
		return bytes.HasPrefix([]byte(initproto.Prefix), l)
	}
	return bytes.HasPrefix(l, []byte(initproto.Prefix))
}

// pass hands held bytes to the user's writer unless the line may still be
// an event (or, at its end, is one).
func (c *consoleReader) pass(lineEnd bool) {
	if len(c.held) == 0 || (!lineEnd && c.mayBeEvent()) {
		return
	}
	if c.out != nil && !c.outBroke {
		if _, err := c.out.Write(c.held); err != nil {
			c.outBroke = true // the user's writer failed: go on reading
		}
	}
	c.held = c.held[:0]
}

// endLine finishes the current line (complete: it ended with a newline).
func (c *consoleReader) endLine(complete bool) {
	if len(c.line) == 0 && c.cut == 0 {
		return
	}
	now := c.since()
	raw := string(c.line)
	text := trimEOL(raw)
	if c.shared && c.cut == 0 && initproto.IsEventLine(text) {
		c.held = c.held[:0]
		c.line, c.cut = c.line[:0], 0
		if ev, err := initproto.DecodeEvent(text); err == nil {
			c.deliver(Event{Host: now, Guest: &ev})
		} else {
			c.deliver(Event{Host: now, Kind: EvChannelError, Detail: err.Error()})
		}
		return
	}
	c.pass(true)
	if cut := c.cut + len(text) - maxConsoleLine; cut > 0 {
		text = text[:maxConsoleLine] + fmt.Sprintf(" … [%d bytes cut]", cut)
	} else if c.cut > 0 {
		text += fmt.Sprintf(" … [%d bytes cut]", c.cut)
	}
	c.ring.Add(text)
	if !c.kernel && isKernelLine(raw) {
		c.kernel = true
		c.deliver(Event{Host: now, Kind: StageKernel})
	}
	if isKernelPanic(raw) {
		c.deliver(Event{Host: now, Kind: hypervisor.EvGuestPanic, Detail: text})
	}
	c.line, c.cut = c.line[:0], 0
}

func trimEOL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// printkStamp matches the time stamp printk puts on a kernel line
// ("[    0.000000] ").
var printkStamp = regexp.MustCompile(`\[\s*\d+\.\d{6}\] `)

// isKernelLine says whether a console line is the kernel's, not the
// firmware's: a printk time stamp near its start (firmware escape
// sequences may precede the first one).
func isKernelLine(s string) bool {
	loc := printkStamp.FindStringIndex(s)
	return loc != nil && loc[0] < 32
}

// kernelPanic matches the kernel's own panic line: the printk time stamp
// at the very start of the line, then the panic message. Guest programs
// cannot print such a line: kitinit relays their output prefixed with
// their name, locks the console against other writers and the kernel
// refuses writes to /dev/kmsg (see boot/kitinit and the platform's
// command line), so "Kernel panic" anywhere else in a line is a program
// talking about panics, not one.
var kernelPanic = regexp.MustCompile(`^\r*\[\s*\d+\.\d{6}\] Kernel panic - not syncing`)

func isKernelPanic(raw string) bool { return kernelPanic.MatchString(raw) }

// readChannel reads kitinit's event channel until EOF. Lines longer than
// initproto.MaxLine are discarded unread, so a guest cannot make kitrun
// buffer more.
func readChannel(r io.Reader, since func() time.Duration, deliver func(Event)) {
	br := bufio.NewReaderSize(r, initproto.MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			n := len(line)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				n += len(line)
			}
			deliver(Event{Host: since(), Kind: EvChannelError, Detail: fmt.Sprintf("an event line of %d bytes, over the limit of %d, was discarded", n, initproto.MaxLine)})
		case len(bytes.TrimSpace(line)) > 0:
			now := since()
			if ev, derr := initproto.DecodeEvent(string(line)); derr != nil {
				deliver(Event{Host: now, Kind: EvChannelError, Detail: derr.Error()})
			} else {
				deliver(Event{Host: now, Guest: &ev})
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// lineRing keeps the last lines of the console.
type lineRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newLineRing(n int) *lineRing { return &lineRing{lines: make([]string, n)} }

func (r *lineRing) Add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = s
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

func (r *lineRing) Last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

func itoa(i int) string { return strconv.Itoa(i) }
