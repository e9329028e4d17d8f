package qemu

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// How kitrun and QEMU are wired. Where there are unix sockets (Linux,
// macOS), console and event channel are socketpairs QEMU inherits (fds 3
// and 4) and QMP is a unix socket in the runtime directory. QEMU for
// Windows takes no inherited descriptors and may lack AF_UNIX: there each
// stream is a TCP connection QEMU makes at startup (before the guest runs,
// so no byte is lost) to a listener kitrun holds on 127.0.0.1, and QMP
// listens on a free port of 127.0.0.1.
var tcpStreams = runtime.GOOS == "windows"

// stream is kitrun's end of a console or channel.
type stream interface {
	io.ReadWriteCloser
	SetWriteDeadline(time.Time) error
}

// link is one stream being set up: the -chardev socket options that reach
// it, the file QEMU inherits (socketpairs) or the listener QEMU connects to
// (TCP).
type link struct {
	what    string
	host    stream   // socketpair: at once; TCP: after accept
	guest   *os.File // socketpair only
	l       net.Listener
	chardev string
}

// newLink makes a link; fd is the descriptor QEMU will inherit it as.
func newLink(what string, fd int) (*link, error) {
	if !tcpStreams {
		host, guest, err := socketpair(what)
		if err != nil {
			return nil, err
		}
		return &link{what: what, host: host, guest: guest, chardev: "fd=" + strconv.Itoa(fd)}, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", what, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return &link{what: what, l: l, chardev: fmt.Sprintf("host=127.0.0.1,port=%d,server=off", port)}, nil
}

// accept waits (until deadline, or QEMU's exit) for QEMU to connect.
func (k *link) accept(deadline time.Time, exited <-chan struct{}) error {
	if k.l == nil {
		return nil
	}
	defer k.l.Close()
	k.l.(*net.TCPListener).SetDeadline(deadline)
	type result struct {
		c   net.Conn
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := k.l.Accept()
		got <- result{c, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			return fmt.Errorf("QEMU did not connect its %s: %w", k.what, r.err)
		}
		k.host = r.c.(*net.TCPConn)
		return nil
	case <-exited:
		return fmt.Errorf("QEMU exited before connecting its %s", k.what)
	}
}

// closers is what the link holds open until the machine is gone.
func (k *link) close() {
	if k.l != nil {
		k.l.Close()
	}
	if k.host != nil {
		k.host.Close()
	}
	if k.guest != nil {
		k.guest.Close()
	}
}

// qmpAddress is where QMP listens: -qmp's value and the network and address
// kitrun dials.
func qmpAddress(runtimeDir string) (arg, network, addr string, err error) {
	if !tcpStreams {
		p := runtimeDir + string(os.PathSeparator) + "qmp.sock"
		return "unix:" + p + ",server=on,wait=off", "unix", p, nil
	}
	port, err := hypervisor.FreePort("127.0.0.1")
	if err != nil {
		return "", "", "", fmt.Errorf("qmp port: %w", err)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return "tcp:" + addr + ",server=on,wait=off", "tcp", addr, nil
}

// chardevOrEmpty is k's -chardev options, "" for no link.
func (k *link) chardevOrEmpty() string {
	if k == nil {
		return ""
	}
	return k.chardev
}
