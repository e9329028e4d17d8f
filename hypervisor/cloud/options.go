package cloud

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// Option keys every cloud backend takes, with one meaning and one default
// (Common).
const (
	OptIngressCIDR  = "ingress-cidr"
	OptMaxInstances = "max-instances"
	OptLifetime     = "lifetime"
	OptImageTTL     = "image-ttl"
	OptPoll         = "poll"
	OptKeepImage    = "keep-image"
)

// Common is the settings every cloud backend takes alike, embedded in each
// backend's Config; ParseCommon reads them.
type Common struct {
	// IngressCIDR: who may reach published ports (the security group's,
	// firewall rule's or network security group's source range).
	IngressCIDR string
	// MaxInstances: Start refuses to run more than this many kitrun
	// machines (of any run) in the region, zone or resource group at once.
	MaxInstances int
	// Lifetime: a machine is deleted this long after its start, by this
	// process if it still runs, else by the next sweep (its expiry tag or
	// label; on Compute Engine also the instance's maxRunDuration).
	Lifetime time.Duration
	// ImageTTL: how long an uploaded image is kept for reuse (its expiry
	// tag, renewed by every reuse).
	ImageTTL time.Duration
	// Poll is the interval between polls of the platform's API.
	Poll time.Duration
	// KeepImage (default): images stay for reuse until ImageTTL, then
	// sweep deletes them. false: they are deleted when the last machine of
	// this process that uses them ends (another process starting from the
	// same image at that moment may fail).
	KeepImage bool
}

// ParseCommon reads the Common settings from o: each option given, else
// its default. Errors start with backend ("aws: ").
func ParseCommon(backend string, o map[string]string) (Common, error) {
	c := Common{IngressCIDR: o[OptIngressCIDR], MaxInstances: 4, Lifetime: time.Hour,
		ImageTTL: 24 * time.Hour, Poll: time.Second, KeepImage: true}
	if c.IngressCIDR != "" && !strings.Contains(c.IngressCIDR, "/") {
		return Common{}, fmt.Errorf("%s: %s=%q is not a CIDR (e.g. 203.0.113.7/32)", backend, OptIngressCIDR, c.IngressCIDR)
	}
	if err := ParseBools(backend, o, BoolOption{Key: OptKeepImage, Dst: &c.KeepImage}); err != nil {
		return Common{}, err
	}
	err := ParseOptions(backend, o,
		[]DurationOption{{Key: OptLifetime, Dst: &c.Lifetime}, {Key: OptImageTTL, Dst: &c.ImageTTL}, {Key: OptPoll, Dst: &c.Poll}},
		[]CountOption{{Key: OptMaxInstances, Dst: &c.MaxInstances}})
	if err != nil {
		return Common{}, err
	}
	return c, nil
}

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
// given (a positive duration, a positive number). Errors start with
// backend ("aws: ").
func ParseOptions(backend string, o map[string]string, durations []DurationOption, counts []CountOption) error {
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
