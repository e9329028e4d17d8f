//go:build linux

package kitinit

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

const (
	defaultProbeInterval = 20 * time.Millisecond
	defaultProbeTimeout  = 30 * time.Second
	maxConnectWait       = time.Second // bound of one connect attempt
)

// probe is a parsed readiness probe.
type probe struct {
	desc     string // "tcp 127.0.0.1:8080", for messages
	timeout  time.Duration
	interval time.Duration
	re       *regexp.Regexp // log probes
	// check makes one attempt; it must give up by deadline or when stop is
	// closed.
	check func(k *kitinit, deadline time.Time, stop <-chan struct{}) bool
}

type probeResult int

const (
	probeReady probeResult = iota
	probeTimedOut
	probeCanceled
)

func parseProbe(r *initproto.Ready) (*probe, error) {
	p := &probe{timeout: time.Duration(r.Timeout), interval: time.Duration(r.Interval)}
	if p.timeout <= 0 {
		p.timeout = defaultProbeTimeout
	}
	if p.interval <= 0 {
		p.interval = defaultProbeInterval
	}
	kinds := 0
	for _, set := range []bool{r.TCP != "", r.Unix != "", r.File != "", len(r.Exec) > 0, r.Log != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, errors.New("ready probe must have exactly one kind")
	}
	switch {
	case r.TCP != "":
		sa, desc, err := parseTCPTarget(r.TCP)
		if err != nil {
			return nil, err
		}
		p.desc = "tcp " + desc
		p.check = func(_ *kitinit, deadline time.Time, _ <-chan struct{}) bool {
			return connectTCP(sa, deadline)
		}
	case r.Unix != "":
		path := r.Unix
		p.desc = "unix " + path
		p.check = func(_ *kitinit, deadline time.Time, _ <-chan struct{}) bool {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return false
			}
			defer unix.Close(fd)
			setConnectTimeout(fd, deadline)
			return unix.Connect(fd, &unix.SockaddrUnix{Name: path}) == nil
		}
	case r.File != "":
		path := r.File
		p.desc = "file " + path
		p.check = func(*kitinit, time.Time, <-chan struct{}) bool {
			var st unix.Stat_t
			return unix.Stat(path, &st) == nil
		}
	case len(r.Exec) > 0:
		argv := r.Exec
		p.desc = "exec " + strings.Join(argv, " ")
		p.check = func(k *kitinit, deadline time.Time, stop <-chan struct{}) bool {
			return k.execProbe(argv, deadline, stop)
		}
	case r.Log != "":
		re, err := regexp.Compile(r.Log)
		if err != nil {
			return nil, err
		}
		p.re = re
		p.desc = "log " + strconv.Quote(r.Log)
	}
	return p, nil
}

// parseTCPTarget reads "port" or "host:port" ("[v6]:port"); the host
// defaults to 127.0.0.1 and must be an IP address or localhost (kitinit has
// no resolver). It returns the address and its canonical "host:port".
func parseTCPTarget(s string) (unix.Sockaddr, string, error) {
	host, port := "127.0.0.1", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return nil, "", errors.New("bad tcp probe port in " + strconv.Quote(s))
	}
	if host == "localhost" || host == "" {
		host = "127.0.0.1"
	}
	if v4, err := parseIPv4(host); err == nil {
		return &unix.SockaddrInet4{Port: int(n), Addr: v4}, host + ":" + port, nil
	}
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		if v6, err := parseIPv6(host[1 : len(host)-1]); err == nil {
			return &unix.SockaddrInet6{Port: int(n), Addr: v6}, host + ":" + port, nil
		}
	}
	return nil, "", errors.New("tcp probe host must be an IP address: " + strconv.Quote(s))
}

// setConnectTimeout bounds a blocking connect (SO_SNDTIMEO applies to it).
func setConnectTimeout(fd int, deadline time.Time) {
	d := min(time.Until(deadline), maxConnectWait)
	if d < time.Millisecond {
		d = time.Millisecond
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}

func connectTCP(sa unix.Sockaddr, deadline time.Time) bool {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	setConnectTimeout(fd, deadline)
	return unix.Connect(fd, sa) == nil
}

// execProbe runs argv once, bounded by deadline; exit 0 means ready.
func (k *kitinit) execProbe(argv []string, deadline time.Time, stop <-chan struct{}) bool {
	p, err := k.spawn(initproto.Exec{Path: argv[0]}, argv, nil, nil, true)
	if err != nil {
		return false
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var ws unix.WaitStatus
	select {
	case ws = <-p.exit:
		k.removeLive(p.pid)
		return ws.Exited() && ws.ExitStatus() == 0
	case <-t.C:
	case <-stop:
	}
	killGroup(p.pid, unix.SIGKILL)
	k.wait(p)
	return false
}

// run polls p every interval until it succeeds, its timeout passes, or stop
// is closed. A log probe waits on w instead.
func (p *probe) run(k *kitinit, w *logWatch, stop <-chan struct{}) probeResult {
	start := time.Now()
	deadline := start.Add(p.timeout)
	if p.re != nil {
		t := time.NewTimer(p.timeout)
		defer t.Stop()
		select {
		case <-w.hit:
			return probeReady
		case <-stop:
			return probeCanceled
		case <-t.C:
			return probeTimedOut
		}
	}
	t := time.NewTimer(p.interval)
	defer t.Stop()
	for {
		if p.check(k, deadline, stop) {
			return probeReady
		}
		select {
		case <-stop:
			return probeCanceled
		default:
		}
		now := time.Now()
		if !now.Before(deadline) {
			return probeTimedOut
		}
		// Keep the cadence: the next attempt is an interval after the
		// previous one started, not after it ended.
		next := start.Add(((now.Sub(start) / p.interval) + 1) * p.interval)
		if next.After(deadline) {
			next = deadline
		}
		t.Reset(time.Until(next))
		select {
		case <-stop:
			return probeCanceled
		case <-t.C:
		}
	}
}
