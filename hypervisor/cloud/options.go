package cloud

import (
	"fmt"
	"strconv"
	"strings"
	"time"
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
