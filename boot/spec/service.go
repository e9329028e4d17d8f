package spec

import (
	"net"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var restartKeys = keySet{in: "restart", valid: []string{"policy", "backoff", "max_backoff", "max_restarts"}}

var restartPolicies = []string{"always", "on-failure", "never"}

// restart parses `restart: <policy>` or the mapping form.
func (p *parser) restart(f *fields) Restart {
	r := Restart{Policy: "on-failure", Backoff: defaultBackoff, MaxBackoff: defaultMaxBackoff}
	n := f.value("restart")
	switch {
	case n == nil:
		return r
	case n.Kind == yaml.ScalarNode && !IsNullNode(n):
		if policy, ok := f.enum("restart", restartPolicies); ok {
			r.Policy = policy
		}
		return r
	case n.Kind != yaml.MappingNode:
		p.typeError(n, "restart", "a policy ("+strings.Join(restartPolicies, ", ")+") or a mapping")
		return r
	}
	rf := p.fields(n, restartKeys, "restart.")
	if policy, ok := rf.enum("policy", restartPolicies); ok {
		r.Policy = policy
	}
	if d, ok := rf.duration("backoff"); ok {
		r.Backoff = d
	}
	if d, ok := rf.duration("max_backoff"); ok {
		r.MaxBackoff = d
		if d < r.Backoff {
			rf.errorf("max_backoff", "%s is less than restart.backoff (%s); use at least %s", d, r.Backoff, r.Backoff)
		}
	} else {
		// A long backoff alone should not be capped below itself.
		r.MaxBackoff = max(r.MaxBackoff, r.Backoff)
	}
	if count, ok := rf.integer("max_restarts", 0, 1<<31-1, "a number >= 0 (0 = unlimited)"); ok {
		r.MaxRestarts = count
	}
	return r
}

var readyKeys = keySet{in: "ready", valid: []string{"tcp", "unix", "file", "exec", "log", "timeout", "interval"}}

func (p *parser) ready(top *fields) *Ready {
	f, ok := top.mapping("ready", readyKeys)
	if !ok {
		return nil
	}
	r := &Ready{Timeout: defaultReadyTimeout, Interval: defaultReadyInterval, Pos: p.at(f.node)}
	switch f.exactlyOne("probe", "tcp", "unix", "file", "exec", "log") {
	case "tcp":
		r.TCP = p.tcpProbe(f)
	case "unix":
		r.Unix, _ = f.guestPath("unix", false)
	case "file":
		r.File, _ = f.guestPath("file", false)
	case "exec":
		r.Exec = p.execProbe(f)
	case "log":
		r.Log = p.logProbe(f)
	}
	if d, ok := f.duration("timeout"); ok {
		r.Timeout = d
	}
	if d, ok := f.duration("interval"); ok {
		r.Interval = d
	}
	return r
}

// tcpProbe returns "port" or "host:port" with a valid port. A bare port
// means the guest's loopback; the prober chooses how to dial it.
func (p *parser) tcpProbe(f *fields) string {
	const hint = "use a port like 8080 or host:port like 127.0.0.1:8080"
	n, ok := f.scalar("tcp", "a port or host:port")
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(n.Value)
	if err != nil {
		host, port = "", n.Value
	}
	num, err := strconv.Atoi(port)
	if err != nil {
		f.errorf("tcp", "%q is not a port or host:port; %s", n.Value, hint)
		return ""
	}
	if num < 1 || num > 65535 {
		f.errorf("tcp", "port %d is out of range; use 1..65535", num)
		return ""
	}
	if host == "" && !strings.Contains(n.Value, ":") {
		return strconv.Itoa(num)
	}
	return net.JoinHostPort(host, strconv.Itoa(num))
}

func (p *parser) execProbe(f *fields) []string {
	argv, pos, ok := f.strs("exec")
	if !ok {
		return nil
	}
	if len(argv) == 0 {
		f.errorf("exec", "must not be empty; give the probe's command line, like [/usr/bin/check, --ready]")
		return nil
	}
	// The probe runs without a shell or PATH search.
	if _, ok := p.checkGuestPath(pos[0], f.label("exec"), argv[0], false); !ok {
		return nil
	}
	return argv
}

func (p *parser) logProbe(f *fields) string {
	s, ok := f.str("log")
	if !ok {
		return ""
	}
	if s == "" {
		f.errorf("log", "must not be empty; give a regular expression that matches the service's ready line")
		return ""
	}
	if _, err := regexp.Compile(s); err != nil {
		f.errorf("log", "%q is not a valid regular expression: %s; use Go RE2 syntax", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return ""
	}
	return s
}
