//go:build linux

package kitinit

import (
	"errors"
	"strconv"
	"strings"
)

// Small IP parsing: net/netip would cost ~90 KB of binary.

var errBadIP = errors.New("bad IP address")

// parseIPv4 reads a dotted quad.
func parseIPv4(s string) ([4]byte, error) {
	var ip [4]byte
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return ip, errBadIP
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || p == "" || len(p) > 1 && p[0] == '0' {
			return ip, errBadIP
		}
		ip[i] = byte(n)
	}
	return ip, nil
}

// parseIPv6 reads an IPv6 address without zone ("::1", "fe80::1:2",
// "::ffff:10.0.0.1").
func parseIPv6(s string) ([16]byte, error) {
	var ip [16]byte
	head, tail, double := strings.Cut(s, "::")
	if strings.Contains(tail, "::") {
		return ip, errBadIP
	}
	groups := func(s string) ([]byte, error) {
		var out []byte
		if s == "" {
			return out, nil
		}
		parts := strings.Split(s, ":")
		for i, p := range parts {
			if i == len(parts)-1 && strings.Contains(p, ".") {
				v4, err := parseIPv4(p)
				if err != nil {
					return nil, err
				}
				return append(out, v4[:]...), nil
			}
			n, err := strconv.ParseUint(p, 16, 16)
			if err != nil || p == "" || len(p) > 4 {
				return nil, errBadIP
			}
			out = append(out, byte(n>>8), byte(n))
		}
		return out, nil
	}
	h, err := groups(head)
	if err != nil {
		return ip, err
	}
	t, err := groups(tail)
	if err != nil {
		return ip, err
	}
	if double && len(h)+len(t) > 14 || !double && len(h) != 16 {
		return ip, errBadIP
	}
	copy(ip[:], h)
	copy(ip[16-len(t):], t)
	return ip, nil
}

// parseCIDR4 reads "10.0.2.15/24".
func parseCIDR4(s string) ([4]byte, int, error) {
	addr, bits, ok := strings.Cut(s, "/")
	ip, err := parseIPv4(addr)
	if !ok || err != nil {
		return ip, 0, errBadIP
	}
	n, err := strconv.ParseUint(bits, 10, 8)
	if err != nil || n > 32 {
		return ip, 0, errBadIP
	}
	return ip, int(n), nil
}
