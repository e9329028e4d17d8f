package cloudfake

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
)

// PublicAddr returns a fresh address for a machine's public IP: a random
// loopback address in 127.64.0.0/10, where the machine's published ports
// are forwarded from, on the same ports as on the cloud. Random rather
// than counted from 127.0.0.2, because the fakes of several packages run
// at once under `go test ./...` (one process each): counting, each
// process handed out 127.0.0.3 and the second QEMU could not listen on
// 127.0.0.3:8080. Two of the 4 million addresses meet with a chance of
// about 1 in 2 million per pair of machines alive together.
func PublicAddr() string {
	n := rand.Uint32N(1 << 22) // the /10's host part
	b, c, d := 64+n>>16, n>>8&0xff, n&0xff
	if d == 0 || d == 255 {
		d = 1 + rand.Uint32N(254) // not ending in .0 or .255, which look like network or broadcast addresses
	}
	return fmt.Sprintf("127.%d.%d.%d", b, c, d)
}

// publicPool is where PublicAddr takes addresses from.
var publicPool = netip.MustParsePrefix("127.64.0.0/10")

// IsPublicAddr says whether endpoint (HOST:PORT) is at an address
// PublicAddr hands out: a machine's own, not 127.0.0.1.
func IsPublicAddr(endpoint string) bool {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && publicPool.Contains(ip)
}
