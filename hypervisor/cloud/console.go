// Package cloud is what kitrun's cloud backends (AWS, GCP and Azure)
// share and no SDK: the options they parse alike, the checks of a spec
// before any call to the platform, the half of a machine that is the same
// on every cloud, turning a serial console that the platform only shows as
// snapshots into a stream, the tags every resource carries, the sweep of
// what a killed run left behind, and uploading an image once per digest.
// It imports no cloud SDK, so any package may use it.
package cloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Snapshot fetches the platform's current view of a serial console: the
// latest output, a window of at most some size (64 KiB on EC2) that rolls
// forward as the guest writes. It returns what the platform returned,
// decoded (no base64).
type Snapshot func(ctx context.Context) ([]byte, error)

// Differ turns successive snapshots of a rolling window into the bytes that
// are new in each. It is not safe for concurrent use.
type Differ struct {
	prev []byte
	seen bool
}

// GapMarker is written into the stream where output was lost: the window
// rolled further between two snapshots than it is long.
const GapMarker = "\n[kitrun: console output lost here: more was written between two polls than the platform's console window holds]\n"

// Next returns what snapshot cur adds to the previous one, and whether
// output was lost in between (the two windows do not overlap).
//
// The new bytes are what follows the longest suffix of the previous
// snapshot that is a prefix of cur: an unchanged window adds nothing, a
// window that grew adds its tail, a window that rolled by r bytes overlaps
// the previous in all but its first r bytes. Output that repeats itself
// exactly over a whole window is ambiguous to any such reader (the longest
// overlap is taken, so nothing is ever duplicated, but a repeat can be
// missed); real consoles carry time stamps that make it unlikely.
func (d *Differ) Next(cur []byte) (fresh []byte, lost bool) {
	if !d.seen {
		d.seen = true
		d.prev = append(d.prev[:0], cur...)
		return cur, false
	}
	n := overlap(d.prev, cur)
	if n == 0 && len(d.prev) > 0 && len(cur) > 0 {
		lost = true
	}
	if len(cur) < len(d.prev) && n == len(cur) {
		// A shorter window that is a suffix of the previous one: the
		// platform trimmed it; nothing is new. Keep the longer window,
		// so that the next snapshot overlaps as much as it can.
		return nil, false
	}
	fresh = cur[n:]
	d.prev = append(d.prev[:0], cur...)
	return fresh, lost
}

// overlap is the length of the longest suffix of prev that is a prefix of
// cur (Knuth–Morris–Pratt: cur is the pattern, prev the text; the
// automaton's state after prev is the answer), in O(len(prev)+len(cur)).
func overlap(prev, cur []byte) int {
	if len(prev) == 0 || len(cur) == 0 {
		return 0
	}
	if len(cur) >= len(prev) && bytes.HasPrefix(cur, prev) {
		return len(prev) // the common case: the window grew
	}
	// Only the last len(cur) bytes of prev can overlap cur.
	if len(prev) > len(cur) {
		prev = prev[len(prev)-len(cur):]
	}
	fail := make([]int, len(cur))
	for i, k := 1, 0; i < len(cur); i++ {
		for k > 0 && cur[i] != cur[k] {
			k = fail[k-1]
		}
		if cur[i] == cur[k] {
			k++
		}
		fail[i] = k
	}
	k := 0
	for _, c := range prev {
		for k > 0 && (k == len(cur) || c != cur[k]) {
			k = fail[k-1]
		}
		if k < len(cur) && c == cur[k] {
			k++
		}
	}
	return k
}

// PollOptions tune a ConsoleStream.
type PollOptions struct {
	// Interval between snapshots (default 1s): the latency of every event
	// the guest reports over the console. A platform's rate limits bound
	// it from below.
	Interval time.Duration
	// Timeout bounds each snapshot call (default 30s).
	Timeout time.Duration
	// OnFirstOutput is called once, when the first non-empty output
	// arrives.
	OnFirstOutput func()
	// OnError is told of every failed snapshot (the stream retries).
	OnError func(error)
}

// ConsoleStream is a serial console read through snapshots: Read returns
// each new byte once, in order, with GapMarker where output was lost. It
// ends (io.EOF) once Finish has been called and a last snapshot taken.
// What the reader has not taken yet is buffered (up to 4 MiB, then polling
// waits), so that polling starts with the machine, before anyone reads.
// Writes fail: a snapshot API has no console input.
type ConsoleStream struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	eof    error // set once the stream has ended
	closed bool  // the reader is gone
	finish chan struct{}
	once   sync.Once
	done   chan struct{}
}

// failuresShown is how many failed snapshots in a row are reported in the
// stream.
const failuresShown = 3

// maxBuffered bounds what a stream holds for its reader.
const maxBuffered = 4 << 20

// PollConsole starts polling snap until Finish (or Close).
func PollConsole(snap Snapshot, o PollOptions) *ConsoleStream {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	s := &ConsoleStream{finish: make(chan struct{}), done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run(snap, o)
	return s
}

// put hands p to the reader; false once the reader is gone.
func (s *ConsoleStream) put(p []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) > maxBuffered && !s.closed {
		s.cond.Wait()
	}
	if s.closed {
		return false
	}
	s.buf = append(s.buf, p...)
	s.cond.Broadcast()
	return true
}

func (s *ConsoleStream) end(err error) {
	s.mu.Lock()
	if s.eof == nil {
		s.eof = err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *ConsoleStream) run(snap Snapshot, o PollOptions) {
	defer close(s.done)
	var d Differ
	first := false
	failures := 0
	var lastErr error
	poll := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
		out, err := snap(ctx)
		cancel()
		lastErr = err
		if err != nil {
			if o.OnError != nil {
				o.OnError(err)
			}
			// Said once in the stream itself, where a boot that
			// times out shows its console: never a silent console.
			if failures++; failures == failuresShown {
				return s.put(fmt.Appendf(nil, "\n[kitrun: the console cannot be read: %d snapshots in a row failed: %v]\n", failures, err))
			}
			return true
		}
		failures = 0
		fresh, lost := d.Next(out)
		if lost && !s.put([]byte(GapMarker)) {
			return false
		}
		if len(fresh) > 0 {
			if !first {
				first = true
				if o.OnFirstOutput != nil {
					o.OnFirstOutput()
				}
			}
			return s.put(fresh)
		}
		return true
	}
	if !poll() {
		return
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !poll() {
				return
			}
		case <-s.finish:
			// The machine is gone: one last look for what it wrote
			// last (a few tries: a failed look would lose the tail),
			// then EOF.
			for try := 0; try < 3; try++ {
				if !poll() || lastErr == nil {
					break
				}
				time.Sleep(o.Interval)
			}
			s.end(io.EOF)
			return
		}
	}
}

// Read implements io.Reader.
func (s *ConsoleStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) == 0 && s.eof == nil && !s.closed {
		s.cond.Wait()
	}
	if len(s.buf) > 0 {
		n := copy(p, s.buf)
		s.buf = s.buf[n:]
		s.cond.Broadcast()
		return n, nil
	}
	if s.eof != nil {
		return 0, s.eof
	}
	return 0, io.EOF
}

// Write implements io.Writer: it always fails.
func (s *ConsoleStream) Write(p []byte) (int, error) {
	return 0, errors.New("this console is read through the platform's console-output snapshots and takes no input")
}

// Finish takes a last snapshot, then ends the stream (io.EOF after what
// was read). It returns once the stream has ended or ctx is done.
func (s *ConsoleStream) Finish(ctx context.Context) error {
	s.once.Do(func() { close(s.finish) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.end(fmt.Errorf("console: the last snapshot did not come: %w", ctx.Err()))
		return ctx.Err()
	}
}

// Close stops polling at once; readers get io.EOF.
func (s *ConsoleStream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.once.Do(func() { close(s.finish) })
	return nil
}

var _ io.ReadWriter = (*ConsoleStream)(nil)
