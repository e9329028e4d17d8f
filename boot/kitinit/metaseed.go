//go:build linux

package kitinit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// The seed over a cloud's instance metadata service.
//
// Trust: the seed holds this boot's SSH host key. On QEMU it comes over
// fw_cfg, which only the hypervisor writes; on a cloud the platform is the
// one party that can answer at the link-local metadata address from inside
// the instance, and the headers the platforms require (IMDSv2's session
// token, Metadata-Flavor: Google both ways, Metadata: true) are their
// guard against requests forwarded from elsewhere. kitinit speaks only to
// that address, insists on those headers, takes nothing larger than
// initproto.MaxSeed, accepts only a newc archive, and never puts the
// seed's bytes in an event or error.
//
// The client is a few lines of HTTP/1.1 over a raw socket rather than
// net/http: kitinit is embedded in every image, and net/http (even net
// alone) would add megabytes (half a megabyte) to it for three requests.

// metaseedWithin bounds the whole fetch: DHCP has already finished (kitinit
// waits for the network), so this covers a metadata service that is slow
// to answer right after boot.
const metaseedWithin = 30 * time.Second

// fetchSeed returns this boot's seed archive from the metadata service at
// addr (ip:port), nil if the platform holds none for this boot.
func fetchSeed(source, addr string, within time.Duration) ([]byte, error) {
	deadline := time.Now().Add(within)
	var (
		data []byte
		err  error
	)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		data, err = fetchSeedOnce(source, addr, deadline)
		if err == nil || isPermanent(err) {
			break
		}
		if time.Now().Add(delay).After(deadline) {
			return nil, fmt.Errorf("%w (the metadata service at %s did not answer within %s)", err, addr, within)
		}
		time.Sleep(delay)
	}
	if err != nil || data == nil {
		return nil, err
	}
	if !bytes.HasPrefix(data, []byte("070701")) {
		return nil, fmt.Errorf("%s: the seed is not a newc archive (%d bytes)", source, len(data))
	}
	return data, nil
}

// permanentError is an answer that asking again will not change. (A type
// switch, not errors.As: that would link reflection into kitinit.)
type permanentError struct{ error }

func isPermanent(err error) bool {
	_, ok := err.(permanentError)
	return ok
}

func fetchSeedOnce(source, addr string, deadline time.Time) ([]byte, error) {
	switch source {
	case initproto.SeedAWS:
		// IMDSv2: a session token first (PUT), then the user data.
		st, _, tok, err := metaGet(deadline, addr, "PUT", "/latest/api/token", [][2]string{{"X-aws-ec2-metadata-token-ttl-seconds", "60"}}, 512)
		if err != nil {
			return nil, err
		}
		if st != 200 {
			return nil, statusError("IMDSv2 token", st)
		}
		st, _, body, err := metaGet(deadline, addr, "GET", "/latest/user-data", [][2]string{{"X-aws-ec2-metadata-token", strings.TrimSpace(string(tok))}}, initproto.MaxSeed)
		if err != nil {
			return nil, err
		}
		switch st {
		case 200:
			return body, nil
		case 404:
			return nil, nil // launched without user data: no seed
		}
		return nil, statusError("IMDS user-data", st)
	case initproto.SeedGCE:
		st, hdr, body, err := metaGet(deadline, addr, "GET", "/computeMetadata/v1/instance/attributes/"+initproto.SeedGCEKey, [][2]string{{"Metadata-Flavor", "Google"}}, initproto.MaxSeed)
		if err != nil {
			return nil, err
		}
		if hdr["metadata-flavor"] != "Google" {
			return nil, permanentError{fmt.Errorf("%s answered without Metadata-Flavor: Google: not Compute Engine's metadata server", addr)}
		}
		switch st {
		case 200:
			return decodeSeed(source, body)
		case 404:
			return nil, nil
		}
		return nil, statusError("metadata attribute "+initproto.SeedGCEKey, st)
	case initproto.SeedAzure:
		st, _, body, err := metaGet(deadline, addr, "GET", "/metadata/instance/compute/userData?api-version=2021-01-01&format=text", [][2]string{{"Metadata", "true"}}, initproto.MaxSeed)
		if err != nil {
			return nil, err
		}
		switch st {
		case 200:
			if len(bytes.TrimSpace(body)) == 0 {
				return nil, nil // created without userData
			}
			return decodeSeed(source, body)
		case 404:
			return nil, nil
		}
		return nil, statusError("IMDS userData", st)
	}
	return nil, permanentError{fmt.Errorf("unknown seed source %q", source)}
}

// statusError: a 5xx or 429 may pass (the service is starting, or
// throttles), anything else is the answer.
func statusError(what string, status int) error {
	err := fmt.Errorf("%s: HTTP %d", what, status)
	if status >= 500 || status == 429 {
		return err
	}
	return permanentError{err}
}

func decodeSeed(source string, body []byte) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(body)))
	if err != nil {
		return nil, permanentError{fmt.Errorf("%s: the seed is not base64 (%d bytes)", source, len(body))}
	}
	return data, nil
}

// metaGet makes one HTTP/1.1 request without a body and reads the answer,
// whose body may not exceed limit bytes. Header names come back in lower
// case.
func metaGet(deadline time.Time, addr, method, target string, header [][2]string, limit int) (status int, hdr map[string]string, body []byte, err error) {
	c, err := dialTCP(addr, deadline)
	if err != nil {
		return 0, nil, nil, err
	}
	defer c.Close()
	host := addr[:strings.LastIndexByte(addr, ':')]
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n", method, target, host)
	for _, h := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(c, req.String()); err != nil {
		return 0, nil, nil, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, nil, nil, permanentError{fmt.Errorf("%s is not an HTTP server", addr)}
	}
	if status, err = strconv.Atoi(f[1]); err != nil {
		return 0, nil, nil, permanentError{fmt.Errorf("%s: bad status line", addr)}
	}
	hdr = map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, nil, fmt.Errorf("reading the answer's header: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			hdr[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	var src io.Reader = r
	if strings.EqualFold(hdr["transfer-encoding"], "chunked") {
		src = &chunked{r: r}
	} else if cl, ok := hdr["content-length"]; ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return 0, nil, nil, permanentError{fmt.Errorf("%s: bad Content-Length", addr)}
		}
		if n > int64(limit) {
			return 0, nil, nil, permanentError{fmt.Errorf("%s: the answer (%d bytes) exceeds %d bytes", target, n, limit)}
		}
		src = io.LimitReader(r, n)
	}
	body, err = io.ReadAll(io.LimitReader(src, int64(limit)+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer's body: %w", err)
	}
	if len(body) > limit {
		return 0, nil, nil, permanentError{fmt.Errorf("%s: the answer exceeds %d bytes", target, limit)}
	}
	return status, hdr, body, nil
}

var errTimeout = errors.New("timed out")

// sockConn is a blocking TCP socket whose reads and writes time out at
// a deadline (SO_RCVTIMEO, SO_SNDTIMEO). kitinit dials with the raw
// socket calls, as its probes do: the net package (its resolver, its
// poller) would add about half a megabyte to kitinit.
type sockConn struct{ fd int }

// dialTCP connects to addr (ip:port) before deadline.
func dialTCP(addr string, deadline time.Time) (*sockConn, error) {
	sa, _, err := parseTCPTarget(addr)
	if err != nil {
		return nil, err
	}
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := time.Until(deadline)
	if d < time.Millisecond {
		unix.Close(fd)
		return nil, fmt.Errorf("connecting to %s: %w", addr, errTimeout)
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return &sockConn{fd: fd}, nil
}

func (c *sockConn) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(c.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, fmt.Errorf("reading: %w", errTimeout)
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *sockConn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(c.fd, p[done:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return done, fmt.Errorf("writing: %w", errTimeout)
		case err != nil:
			return done, err
		}
		done += n
	}
	return done, nil
}

func (c *sockConn) Close() error { return unix.Close(c.fd) }

// chunked reads an HTTP/1.1 chunked body.
type chunked struct {
	r    *bufio.Reader
	left int64
	done bool
}

func (c *chunked) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 {
			return 0, errors.New("bad chunk size")
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		// The CRLF after the chunk.
		if _, err := c.r.Discard(2); err != nil {
			return n, err
		}
	}
	return n, err
}
