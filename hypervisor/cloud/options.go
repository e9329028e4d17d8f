package cloud

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// DurationOption is a backend option holding a duration, and where its
// value goes.
type DurationOption struct {
	Key string
	Dst *time.Duration
}

// CountOption is a backend option holding a positive number, and where
// its value goes.
type CountOption struct {
	Key string
	Dst *int
}

// ParseOptions sets each duration and count from its option in o, when
// given (a positive duration, a positive number), and checks that
// ingressCIDR, when given, is a CIDR: the option checks every cloud
// backend makes alike. Errors start with backend ("aws: ").
func ParseOptions(backend string, o map[string]string, durations []DurationOption, counts []CountOption, ingressCIDR string) error {
	for _, d := range durations {
		if s := o[d.Key]; s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				return fmt.Errorf("%s: %s=%q is not a positive duration (e.g. 1h, 30m)", backend, d.Key, s)
			}
			*d.Dst = v
		}
	}
	for _, n := range counts {
		if s := o[n.Key]; s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				return fmt.Errorf("%s: %s=%q is not a positive number", backend, n.Key, s)
			}
			*n.Dst = v
		}
	}
	if ingressCIDR != "" && !strings.Contains(ingressCIDR, "/") {
		return fmt.Errorf("%s: ingress-cidr=%q is not a CIDR (e.g. 203.0.113.7/32)", backend, ingressCIDR)
	}
	return nil
}

// BoolOption is a backend option holding true or false, and where its
// value goes (which holds the default until then).
type BoolOption struct {
	Key string
	Dst *bool
}

// ParseBools sets each bool from its option in o, when given. Errors
// start with backend.
func ParseBools(backend string, o map[string]string, bools ...BoolOption) error {
	for _, b := range bools {
		switch o[b.Key] {
		case "":
		case "true":
			*b.Dst = true
		case "false":
			*b.Dst = false
		default:
			return fmt.Errorf("%s: %s=%q; valid: true, false", backend, b.Key, o[b.Key])
		}
	}
	return nil
}

// CheckEndpoints says whether each endpoint given (an override of the
// platform's API, for a fake or a private endpoint) is an http(s) URL.
func CheckEndpoints(backend string, endpoints ...string) error {
	for _, e := range endpoints {
		if e == "" {
			continue
		}
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: endpoint %q is not an http(s) URL", backend, e)
		}
	}
	return nil
}

// Register makes a cloud backend available by its name, to boot
// (hypervisor.Register) and to sweep (RegisterSweeper); cloud backends
// call it from init with their New.
func Register[B interface {
	hypervisor.Backend
	Sweeper
}](name string, newBackend func(hypervisor.Options) (B, error)) {
	hypervisor.Register(name, func(o hypervisor.Options) (hypervisor.Backend, error) { return newBackend(o) })
	RegisterSweeper(name, func(o hypervisor.Options) (Sweeper, error) { return newBackend(o) })
}
