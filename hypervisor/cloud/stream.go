package cloud

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Chunk fetches what a serial console wrote since the last call, for a
// platform whose console API is a true stream (GCP's
// getSerialPortOutput takes a byte offset and returns the next one).
// lost says that output was dropped before fresh (the platform's buffer
// no longer held the offset asked for).
type Chunk func(ctx context.Context) (fresh []byte, lost bool, err error)

// StreamGapMarker is written into a streamed console where the platform
// dropped output before it was read.
const StreamGapMarker = "\n[kitrun: console output lost here: the platform dropped it from its buffer before it was read]\n"

// PollStream is PollConsole for a platform whose console API returns what
// is new since an offset: no snapshots to compare, each byte arrives once.
// The stream behaves as PollConsole's does (buffering, Finish, Close, the
// failures it reports).
func PollStream(next Chunk, o PollOptions) *ConsoleStream {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	s := &ConsoleStream{finish: make(chan struct{}), done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.runStream(next, o)
	return s
}

func (s *ConsoleStream) runStream(next Chunk, o PollOptions) {
	defer close(s.done)
	first := false
	failures := 0
	var lastErr error
	poll := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
		fresh, lost, err := next(ctx)
		cancel()
		lastErr = err
		if err != nil {
			if o.OnError != nil {
				o.OnError(err)
			}
			if failures++; failures == failuresShown {
				return s.put(fmt.Appendf(nil, "\n[kitrun: the console cannot be read: %d reads in a row failed: %v]\n", failures, err))
			}
			return true
		}
		failures = 0
		if lost && !s.put([]byte(StreamGapMarker)) {
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
