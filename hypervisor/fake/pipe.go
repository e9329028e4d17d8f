package fake

import (
	"errors"
	"io"
	"sync"
	"time"
)

// bufferSize bounds what a stream holds unread, as a socket's buffer does:
// a guest that writes faster than the host reads waits.
const bufferSize = 1 << 20

// buffer is one direction of a stream: writes wait while bufferSize bytes
// are unread, reads wait for data or the writer's close.
type buffer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	data   []byte
	closed bool
}

func newBuffer() *buffer {
	b := &buffer{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *buffer) write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for len(p) > 0 {
		for len(b.data) >= bufferSize && !b.closed {
			b.cond.Wait()
		}
		if b.closed {
			return n, io.ErrClosedPipe
		}
		k := min(len(p), bufferSize-len(b.data))
		b.data = append(b.data, p[:k]...)
		p, n = p[k:], n+k
		b.cond.Broadcast()
	}
	return n, nil
}

func (b *buffer) read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.data) == 0 && !b.closed {
		b.cond.Wait()
	}
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	b.cond.Broadcast()
	return n, nil
}

func (b *buffer) close() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// halfPipe is one end of a bidirectional stream.
type halfPipe struct {
	in, out *buffer
}

// pipePair makes the two ends of a stream.
func pipePair() (a, b *halfPipe) {
	ab, ba := newBuffer(), newBuffer()
	return &halfPipe{in: ba, out: ab}, &halfPipe{in: ab, out: ba}
}

func (h *halfPipe) Read(p []byte) (int, error)  { return h.in.read(p) }
func (h *halfPipe) Write(p []byte) (int, error) { return h.out.write(p) }

// Close ends this end's writing (the peer reads EOF after the data) and
// its reading.
func (h *halfPipe) Close() error {
	h.out.close()
	h.in.close()
	return nil
}

// SetWriteDeadline is not supported: callers fall back to abandoning a
// write that overruns its context.
func (h *halfPipe) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
