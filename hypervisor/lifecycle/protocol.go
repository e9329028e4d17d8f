package lifecycle

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Control operations.
const (
	OpStatus = "status"
	OpStop   = "stop"
	OpKill   = "kill"
	OpPause  = "pause"
	OpResume = "resume"
	OpAttach = "attach"
)

// request is one line a client sends on control.sock.
type request struct {
	Op string `json:"op"`
	// Timeout is stop's grace period before the power-off is forced.
	Timeout Duration `json:"timeout,omitempty"`
	// Reason is recorded with a stop or kill.
	Reason string `json:"reason,omitempty"`
}

// response is one line the supervisor answers.
type response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Code classifies an error: "state" (the VM's state does not allow
	// the operation), "" otherwise.
	Code string `json:"code,omitempty"`
	// Accepted marks the first of stop's and kill's two answers.
	Accepted bool   `json:"accepted,omitempty"`
	State    *State `json:"state,omitempty"`
	// Status is QEMU's run state from QMP query-status (status only).
	Status string `json:"qemu_status,omitempty"`
	RSS    int64  `json:"rss_bytes,omitempty"`
}

// requestDeadline bounds reading a request and writing a short answer
// (a variable for tests).
var requestDeadline = 5 * time.Second

// Deadlines of the control protocol.
const (
	// dialDeadline bounds connecting to a supervisor.
	dialDeadline = 2 * time.Second
	// opDeadline bounds an operation that needs QEMU (pause, status, …).
	opDeadline = 10 * time.Second
	// teardownMargin is what a stop may take beyond its grace: QMP quit,
	// SIGKILL, the final record.
	teardownMargin = 20 * time.Second
	// maxLine bounds a protocol line.
	maxLine = 64 << 10
)

// client is one connection to a supervisor.
type client struct {
	name string
	conn net.Conn
	br   *bufio.Reader
}

// ErrNoSupervisor: the control socket does not answer.
var ErrNoSupervisor = errors.New("its supervisor does not answer")

func (s *Store) dial(ctx context.Context, name string) (*client, error) {
	d := net.Dialer{Timeout: dialDeadline}
	c, err := d.DialContext(ctx, "unix", s.Path(name, ControlSocket))
	if err != nil {
		return nil, fmt.Errorf("VM %s: %w (%v)", name, ErrNoSupervisor, err)
	}
	return &client{name: name, conn: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

func (c *client) Close() error { return c.conn.Close() }

func (c *client) send(req request) error {
	b, _ := json.Marshal(req)
	c.conn.SetWriteDeadline(time.Now().Add(requestDeadline))
	_, err := c.conn.Write(append(b, '\n'))
	c.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("VM %s: sending %s: %w", c.name, req.Op, err)
	}
	return nil
}

// recv reads one answer within d; an error answer becomes an error.
func (c *client) recv(op string, d time.Duration) (*response, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	defer c.conn.SetReadDeadline(time.Time{})
	line, err := readLine(c.br)
	if err != nil {
		return nil, fmt.Errorf("VM %s: no answer to %s: %w", c.name, op, err)
	}
	var r response
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("VM %s: bad answer to %s: %v", c.name, op, err)
	}
	if !r.OK {
		if r.Code == "state" && r.State != nil {
			return &r, &StateError{Name: c.name, State: r.State.State, Op: op, Hint: r.Error}
		}
		return &r, fmt.Errorf("VM %s: %s: %s", c.name, op, r.Error)
	}
	return &r, nil
}

// call sends a request and reads its single answer.
func (s *Store) call(ctx context.Context, name string, req request, d time.Duration) (*response, error) {
	c, err := s.dial(ctx, name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = time.Until(dl)
	}
	if err := c.send(req); err != nil {
		return nil, err
	}
	return c.recv(req.Op, d)
}

// readLine reads a line of at most maxLine bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, frag...)
		if len(line) > maxLine {
			return nil, errors.New("line too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}
