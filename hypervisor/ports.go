package hypervisor

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// PortForward makes a guest TCP port reachable from the host.
type PortForward struct {
	// HostAddr is the address the host side binds: 127.0.0.1 unless the
	// user says otherwise, so that nothing is exposed by default.
	HostAddr string
	// HostPort 0 lets the backend choose a free port.
	HostPort  int
	GuestPort int
}

// String renders the forward the way users write it.
func (p PortForward) String() string {
	return fmt.Sprintf("%s:%d->%d", p.HostAddr, p.HostPort, p.GuestPort)
}

// Addr is the host side's address.
func (p PortForward) Addr() string {
	return net.JoinHostPort(p.HostAddr, strconv.Itoa(p.HostPort))
}

// ParsePortForward reads "HOSTPORT:GUESTPORT", "ADDR:HOSTPORT:GUESTPORT" or
// "PORT" (same on both sides). HOSTPORT 0 picks a free port.
func ParsePortForward(s string) (PortForward, error) {
	parts := strings.Split(s, ":")
	pf := PortForward{HostAddr: "127.0.0.1"}
	var hostPort, guestPort string
	switch len(parts) {
	case 1:
		hostPort, guestPort = parts[0], parts[0]
	case 2:
		hostPort, guestPort = parts[0], parts[1]
	case 3:
		pf.HostAddr, hostPort, guestPort = parts[0], parts[1], parts[2]
	default:
		return pf, fmt.Errorf("bad port forward %q; use HOSTPORT:GUESTPORT or ADDR:HOSTPORT:GUESTPORT", s)
	}
	var err error
	if pf.HostPort, err = parsePort(hostPort, true); err != nil {
		return pf, fmt.Errorf("bad port forward %q: host port: %v", s, err)
	}
	if pf.GuestPort, err = parsePort(guestPort, false); err != nil {
		return pf, fmt.Errorf("bad port forward %q: guest port: %v", s, err)
	}
	return pf, nil
}

func parsePort(s string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

var (
	portMu   sync.Mutex
	portUsed = map[string]bool{}
)

// FreePort picks a free TCP port on addr, never the same twice in this
// process, so that parallel machines do not race each other for one. (Another
// process may still take it before the backend binds it; the backend then
// fails to start and says so.) It is kitrun's one free-port picker.
func FreePort(addr string) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		key := net.JoinHostPort(addr, strconv.Itoa(p))
		if !portUsed[key] {
			portUsed[key] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port on " + addr)
}

// ResolvePorts gives every forward with HostPort 0 a free port.
func ResolvePorts(fwds []PortForward) ([]PortForward, error) {
	out := make([]PortForward, len(fwds))
	for i, f := range fwds {
		if f.HostAddr == "" {
			f.HostAddr = "127.0.0.1"
		}
		if f.HostPort == 0 {
			p, err := FreePort(f.HostAddr)
			if err != nil {
				return nil, fmt.Errorf("choosing a host port for guest port %d: %w", f.GuestPort, err)
			}
			f.HostPort = p
		}
		out[i] = f
	}
	return out, nil
}

// EndpointOf finds the host address of a guest port among forwards.
func EndpointOf(fwds []PortForward, guestPort int) (string, error) {
	for _, f := range fwds {
		if f.GuestPort == guestPort {
			return f.Addr(), nil
		}
	}
	return "", fmt.Errorf("guest port %d is not published", guestPort)
}
