//go:build windows

package hyperv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/Microsoft/go-winio"
)

// openLocalPipe connects to the named pipe of a VM's COM port with
// go-winio. Hyper-V creates the pipe when the VM starts, so the dial is
// retried until then; it returns at once with a stream whose first read
// waits for the connection, so that the caller can start the VM.
func openLocalPipe(ctx context.Context, name string, timeout time.Duration) (io.ReadWriteCloser, bool, error) {
	p := &lazyPipe{ready: make(chan struct{}), closing: make(chan struct{})}
	go func() {
		defer close(p.ready)
		deadline := time.Now().Add(timeout)
		for {
			d := 2 * time.Second
			c, err := winio.DialPipe(PipePath(name), &d)
			if err == nil {
				p.conn = c
				return
			}
			if time.Now().After(deadline) {
				p.err = fmt.Errorf("hyperv: pipe %s: %w", PipePath(name), err)
				return
			}
			select {
			case <-ctx.Done():
				p.err = ctx.Err()
				return
			case <-p.closing:
				p.err = net.ErrClosed
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p, true, nil
}

// lazyPipe is a pipe connection that is being dialled.
type lazyPipe struct {
	ready   chan struct{}
	conn    net.Conn
	err     error
	closing chan struct{}
	once    sync.Once
}

func (p *lazyPipe) Read(b []byte) (int, error) {
	<-p.ready
	if p.conn == nil {
		if errors.Is(p.err, net.ErrClosed) {
			return 0, io.EOF
		}
		return 0, p.err
	}
	return p.conn.Read(b)
}

func (p *lazyPipe) Write(b []byte) (int, error) {
	<-p.ready
	if p.conn == nil {
		return 0, p.err
	}
	return p.conn.Write(b)
}

func (p *lazyPipe) Close() error {
	p.once.Do(func() { close(p.closing) })
	<-p.ready
	if p.conn != nil {
		return p.conn.Close()
	}
	return nil
}
