//go:build linux

package kitinit

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DHCPv4 messages (RFC 2131) and the options kitinit uses (RFC 2132,
// RFC 3442). Everything here is pure: it encodes what kitinit sends and
// decodes what any server on the link may send, which is untrusted input.
// Every length is checked before it is used; a malformed reply is an error,
// never a panic.
//
// kitinit does not use github.com/insomniacslk/dhcp (nclient4): measured,
// it adds 512 KB to kitinit on x86_64 (458 KB on arm64), mostly for package
// net and an LZ4 codec pulled in by u-root/uio, to a binary every image
// carries. The client needs a few hundred lines.

const (
	bootRequest = 1
	bootReply   = 2

	dhcpServerPort = 67
	dhcpClientPort = 68

	// dhcpFixedLen is the BOOTP header up to the magic cookie.
	dhcpFixedLen = 236
	// dhcpMinLen is the header, the cookie and an end option.
	dhcpMinLen = dhcpFixedLen + 4 + 1
	// flagBroadcast asks the server to broadcast its replies: before the
	// NIC has an address, a unicast reply could not be received by an
	// ordinary socket (kitinit reads with a packet socket, but some relays
	// and servers only reach a client that asked for broadcast).
	flagBroadcast = 0x8000
)

var magicCookie = [4]byte{99, 130, 83, 99}

// DHCP message types (option 53).
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpDecline  = 4
	dhcpAck      = 5
	dhcpNak      = 6
	dhcpRelease  = 7
)

// Option codes.
const (
	optPad             = 0
	optSubnetMask      = 1
	optRouter          = 3
	optDNS             = 6
	optHostname        = 12
	optDomainName      = 15
	optMTU             = 26
	optRequestedIP     = 50
	optLeaseTime       = 51
	optOverload        = 52
	optMessageType     = 53
	optServerID        = 54
	optParamRequest    = 55
	optMessage         = 56
	optMaxMessageSize  = 57
	optRenewalTime     = 58
	optRebindingTime   = 59
	optClientID        = 61
	optClasslessRoutes = 121
	optEnd             = 255
)

// requestedOptions is what kitinit asks every server for. The hostname is
// not among them: the image's own (the spec's) is authoritative.
var requestedOptions = []byte{
	optSubnetMask, optRouter, optDNS, optDomainName, optMTU,
	optLeaseTime, optServerID, optRenewalTime, optRebindingTime, optClasslessRoutes,
}

func messageTypeName(t byte) string {
	switch t {
	case dhcpDiscover:
		return "DISCOVER"
	case dhcpOffer:
		return "OFFER"
	case dhcpRequest:
		return "REQUEST"
	case dhcpDecline:
		return "DECLINE"
	case dhcpAck:
		return "ACK"
	case dhcpNak:
		return "NAK"
	case dhcpRelease:
		return "RELEASE"
	}
	return "type " + strconv.Itoa(int(t))
}

// dhcpMessage is a decoded DHCP message: the header fields kitinit reads
// and every option, by code (a repeated option is concatenated, RFC 3396).
type dhcpMessage struct {
	op      byte
	xid     uint32
	secs    uint16
	flags   uint16
	ciaddr  [4]byte
	yiaddr  [4]byte
	chaddr  [6]byte // Ethernet: only the first hlen=6 bytes count
	options map[byte][]byte
}

// encode writes m with its options in the order given (message type
// first, as some servers expect), then the end option, padded to the
// 300-byte minimum BOOTP size that old relays insist on.
func (m *dhcpMessage) encode(order []byte) []byte {
	b := make([]byte, dhcpFixedLen, 300)
	b[0] = m.op
	b[1] = 1 // Ethernet
	b[2] = 6 // its address length
	binary.BigEndian.PutUint32(b[4:], m.xid)
	binary.BigEndian.PutUint16(b[8:], m.secs)
	binary.BigEndian.PutUint16(b[10:], m.flags)
	copy(b[12:], m.ciaddr[:])
	copy(b[16:], m.yiaddr[:])
	copy(b[28:], m.chaddr[:])
	b = append(b, magicCookie[:]...)
	for _, code := range order {
		v, ok := m.options[code]
		if !ok {
			continue
		}
		// A value longer than 255 bytes is split into several options
		// of the same code (RFC 3396); decode concatenates them back.
		for first := true; first || len(v) > 0; first = false {
			n := min(len(v), 255)
			b = append(b, code, byte(n))
			b = append(b, v[:n]...)
			v = v[n:]
		}
	}
	b = append(b, optEnd)
	for len(b) < 300 {
		b = append(b, optPad)
	}
	return b
}

// decodeDHCP parses a DHCP message. Options in the sname and file fields
// (option 52, overload) are not read: the options kitinit needs fit in the
// options field of every server it has met, and a lease without them is
// refused later by name.
func decodeDHCP(b []byte) (*dhcpMessage, error) {
	if len(b) < dhcpMinLen {
		return nil, errors.New("short DHCP message: " + strconv.Itoa(len(b)) + " bytes, at least " + strconv.Itoa(dhcpMinLen) + " needed")
	}
	if [4]byte(b[dhcpFixedLen:dhcpFixedLen+4]) != magicCookie {
		return nil, errors.New("not a DHCP message: no magic cookie")
	}
	m := &dhcpMessage{
		op:      b[0],
		xid:     binary.BigEndian.Uint32(b[4:]),
		secs:    binary.BigEndian.Uint16(b[8:]),
		flags:   binary.BigEndian.Uint16(b[10:]),
		ciaddr:  [4]byte(b[12:16]),
		yiaddr:  [4]byte(b[16:20]),
		chaddr:  [6]byte(b[28:34]),
		options: map[byte][]byte{},
	}
	if b[1] != 1 || b[2] != 6 {
		return nil, errors.New("DHCP message for hardware type " + strconv.Itoa(int(b[1])) + " with address length " + strconv.Itoa(int(b[2])) + "; kitinit speaks Ethernet (1, 6)")
	}
	opts := b[dhcpFixedLen+4:]
	for i := 0; i < len(opts); {
		code := opts[i]
		if code == optEnd {
			return m, nil
		}
		if code == optPad {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return nil, errors.New("DHCP option " + strconv.Itoa(int(code)) + " has no length byte")
		}
		n := int(opts[i+1])
		if i+2+n > len(opts) {
			return nil, errors.New("DHCP option " + strconv.Itoa(int(code)) + " claims " + strconv.Itoa(n) + " bytes, only " + strconv.Itoa(len(opts)-i-2) + " remain")
		}
		m.options[code] = append(m.options[code], opts[i+2:i+2+n]...)
		i += 2 + n
	}
	return nil, errors.New("DHCP options have no end option")
}

// messageType is option 53, or 0 if absent or malformed.
func (m *dhcpMessage) messageType() byte {
	if v := m.options[optMessageType]; len(v) == 1 {
		return v[0]
	}
	return 0
}

// addr reads an option holding one IPv4 address.
func (m *dhcpMessage) addr(code byte) ([4]byte, bool) {
	v := m.options[code]
	if len(v) != 4 {
		return [4]byte{}, false
	}
	return [4]byte(v), true
}

// addrs reads an option holding a list of IPv4 addresses.
func (m *dhcpMessage) addrs(code byte) ([][4]byte, bool) {
	v := m.options[code]
	if len(v) == 0 || len(v)%4 != 0 {
		return nil, false
	}
	var out [][4]byte
	for ; len(v) >= 4; v = v[4:] {
		out = append(out, [4]byte(v[:4]))
	}
	return out, true
}

// seconds reads a 32-bit time option.
func (m *dhcpMessage) seconds(code byte) (time.Duration, bool) {
	v := m.options[code]
	if len(v) != 4 {
		return 0, false
	}
	s := binary.BigEndian.Uint32(v)
	if s == 0xffffffff {
		return infiniteLease, true
	}
	return time.Duration(s) * time.Second, true
}

// infiniteLease stands for a lease time of 0xffffffff ("infinity").
const infiniteLease = time.Duration(1<<63 - 1)

// route is a classless static route (option 121); a zero gateway means the
// destination is on the link.
type route struct {
	dst     [4]byte
	bits    int
	gateway [4]byte
}

// classlessRoutes decodes option 121: each route is the prefix length,
// then only the significant bytes of the destination, then the router.
func classlessRoutes(v []byte) ([]route, error) {
	var out []route
	for len(v) > 0 {
		bits := int(v[0])
		if bits > 32 {
			return nil, errors.New("classless route with prefix length " + strconv.Itoa(bits) + " (at most 32)")
		}
		n := (bits + 7) / 8
		if len(v) < 1+n+4 {
			return nil, errors.New("classless route option truncated")
		}
		var r route
		r.bits = bits
		copy(r.dst[:], v[1:1+n])
		r.gateway = [4]byte(v[1+n : 1+n+4])
		if masked(r.dst, bits) != r.dst {
			return nil, errors.New("classless route " + routeString(r) + " has host bits set")
		}
		out = append(out, r)
		v = v[1+n+4:]
	}
	return out, nil
}

// maskBits is the prefix length of a netmask, or false for a mask whose
// ones are not contiguous.
func maskBits(m [4]byte) (int, bool) {
	v := binary.BigEndian.Uint32(m[:])
	bits := 0
	for bits < 32 && v&(1<<(31-bits)) != 0 {
		bits++
	}
	if bits < 32 && v<<bits != 0 {
		return 0, false
	}
	return bits, true
}

func masked(a [4]byte, bits int) [4]byte {
	v := binary.BigEndian.Uint32(a[:])
	if bits < 32 {
		v &^= 0xffffffff >> bits
	}
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], v)
	return out
}

func inPrefix(a, net [4]byte, bits int) bool { return masked(a, bits) == masked(net, bits) }

func ipString(a [4]byte) string {
	return strconv.Itoa(int(a[0])) + "." + strconv.Itoa(int(a[1])) + "." + strconv.Itoa(int(a[2])) + "." + strconv.Itoa(int(a[3]))
}

func routeString(r route) string {
	s := ipString(r.dst) + "/" + strconv.Itoa(r.bits)
	if r.gateway == ([4]byte{}) {
		return s + " on link"
	}
	return s + " via " + ipString(r.gateway)
}

// lease is what an ACK gives the client.
type lease struct {
	server  [4]byte // option 54: where renewals go
	addr    [4]byte
	bits    int
	routes  []route // option 121 if given, else a default route via option 3
	dns     [][4]byte
	domain  string
	mtu     int // 0: not given
	time    time.Duration
	t1, t2  time.Duration
	offered time.Time // when the REQUEST that got this ACK was sent: lease times count from there
}

// gateway is the lease's default router, or false.
func (l *lease) gateway() ([4]byte, bool) {
	for _, r := range l.routes {
		if r.bits == 0 && r.gateway != ([4]byte{}) {
			return r.gateway, true
		}
	}
	return [4]byte{}, false
}

// describe is how the lease reads in the network-up event, e.g.
// "eth0 10.0.2.15/24 via 10.0.2.2 (dhcp from 10.0.2.2, lease 24h0m0s)".
func (l *lease) describe(nic string) string {
	s := nic + " " + ipString(l.addr) + "/" + strconv.Itoa(l.bits)
	if gw, ok := l.gateway(); ok {
		s += " via " + ipString(gw)
	}
	s += " (dhcp from " + ipString(l.server) + ", lease "
	if l.time == infiniteLease {
		s += "infinite"
	} else {
		s += l.time.String()
	}
	if l.mtu != 0 {
		s += ", mtu " + strconv.Itoa(l.mtu)
	}
	return s + ")"
}

// leaseFromAck checks an ACK and turns it into a lease. Only what a NIC
// cannot do without is required (an address and a server identifier);
// the rest falls back as RFC 2131 and 2132 say.
func leaseFromAck(m *dhcpMessage) (*lease, error) {
	l := &lease{addr: m.yiaddr}
	if l.addr == ([4]byte{}) || l.addr[0] == 127 || l.addr[0] >= 224 {
		return nil, errors.New("ACK offers no usable address (yiaddr " + ipString(l.addr) + ")")
	}
	var ok bool
	if l.server, ok = m.addr(optServerID); !ok {
		return nil, errors.New("ACK has no server identifier (option 54)")
	}
	if mask, ok := m.addr(optSubnetMask); ok {
		if l.bits, ok = maskBits(mask); !ok {
			return nil, errors.New("ACK's subnet mask " + ipString(mask) + " is not contiguous")
		}
	} else {
		l.bits = classfulBits(l.addr)
	}
	if v := m.options[optClasslessRoutes]; len(v) > 0 {
		// RFC 3442: with classless routes, the router option is ignored
		// (an empty option, which that RFC does not allow, is not there).
		routes, err := classlessRoutes(v)
		if err != nil {
			return nil, errors.New("ACK: " + err.Error())
		}
		l.routes = routes
	} else if rs, ok := m.addrs(optRouter); ok && rs[0] != ([4]byte{}) {
		l.routes = []route{{gateway: rs[0]}}
	}
	if dns, ok := m.addrs(optDNS); ok {
		for _, d := range dns {
			if d != ([4]byte{}) {
				l.dns = append(l.dns, d)
			}
		}
	}
	if v := m.options[optDomainName]; len(v) > 0 {
		// Some servers end the name with a NUL; anything else that is
		// not a host name character would corrupt resolv.conf.
		d := strings.TrimRight(string(v), "\x00")
		if validDomain(d) {
			l.domain = d
		}
	}
	if v := m.options[optMTU]; len(v) == 2 {
		// RFC 2132's minimum is 68; below 576 no IPv4 host has to be able
		// to work, so such a value is a broken server's and is ignored.
		if mtu := int(binary.BigEndian.Uint16(v)); mtu >= 576 {
			l.mtu = mtu
		}
	}
	if l.time, ok = m.seconds(optLeaseTime); !ok {
		return nil, errors.New("ACK has no lease time (option 51)")
	}
	// T1 and T2 default to 1/2 and 7/8 of the lease (RFC 2131 4.4.5); a
	// server's values are used only in the order T1 <= T2 <= lease.
	l.t1, l.t2 = l.time/2, l.time/8*7
	if l.time == infiniteLease {
		l.t1, l.t2 = infiniteLease, infiniteLease
	}
	if t2, ok := m.seconds(optRebindingTime); ok && t2 <= l.time {
		l.t2 = t2
	}
	if t1, ok := m.seconds(optRenewalTime); ok && t1 <= l.t2 {
		l.t1 = t1
	}
	if l.t1 > l.t2 {
		l.t1 = l.t2
	}
	return l, nil
}

// classfulBits is the natural prefix of an address, the mask a client
// assumes when the server gives none.
func classfulBits(a [4]byte) int {
	switch {
	case a[0] < 128:
		return 8
	case a[0] < 192:
		return 16
	}
	return 24
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, c := range d {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// resolvConf renders /etc/resolv.conf from a lease: at most three
// nameservers (the resolver's limit) and the search domain.
func (l *lease) resolvConf() string {
	var b strings.Builder
	for i, d := range l.dns {
		if i == 3 {
			break
		}
		b.WriteString("nameserver " + ipString(d) + "\n")
	}
	if l.domain != "" {
		b.WriteString("search " + l.domain + "\n")
	}
	return b.String()
}
