package cloudfake

import (
	"net"
	"net/netip"
	"testing"
)

// TestPublicAddr: addresses are loopback addresses of 127.64.0.0/10, a
// listener can bind one, and a thousand of them do not repeat.
func TestPublicAddr(t *testing.T) {
	pool := publicPool
	seen := map[string]bool{}
	for range 1000 {
		a := PublicAddr()
		ip, err := netip.ParseAddr(a)
		if err != nil || !pool.Contains(ip) || !ip.IsLoopback() {
			t.Fatalf("%q: not in %s (%v)", a, pool, err)
		}
		if b := ip.As4(); b[3] == 0 || b[3] == 255 {
			t.Fatalf("%q ends in .0 or .255", a)
		}
		if !IsPublicAddr(net.JoinHostPort(a, "8080")) {
			t.Fatalf("IsPublicAddr(%s:8080) = false", a)
		}
		seen[a] = true
	}
	if len(seen) < 999 {
		t.Errorf("%d distinct addresses of 1000", len(seen))
	}
	for _, ep := range []string{"127.0.0.1:8080", "127.0.0.3:8080", "10.0.0.1:22", "127.64.0.1", "nonsense"} {
		if IsPublicAddr(ep) {
			t.Errorf("IsPublicAddr(%q) = true", ep)
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(PublicAddr(), "0"))
	if err != nil {
		t.Fatalf("listening on a fake public address: %v", err)
	}
	l.Close()
}
