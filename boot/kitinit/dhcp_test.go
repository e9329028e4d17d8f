//go:build linux

package kitinit

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

var testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// slirpOptions is what QEMU's user networking puts in its replies.
func slirpOptions(kind byte) map[byte][]byte {
	return map[byte][]byte{
		optMessageType: {kind},
		optServerID:    {10, 0, 2, 2},
		optLeaseTime:   {0, 1, 0x51, 0x80}, // 86400 s
		optSubnetMask:  {255, 255, 255, 0},
		optRouter:      {10, 0, 2, 2},
		optDNS:         {10, 0, 2, 3},
	}
}

// reply builds a server's reply to m.
func reply(m *dhcpMessage, yiaddr [4]byte, opts map[byte][]byte) []byte {
	r := &dhcpMessage{op: bootReply, xid: m.xid, chaddr: m.chaddr, yiaddr: yiaddr, options: opts}
	var order []byte
	for code := range 256 {
		if _, ok := opts[byte(code)]; ok {
			order = append(order, byte(code))
		}
	}
	return r.encode(order)
}

// fakeServer is a transport with a DHCP server behind it and a clock that
// jumps to each receive deadline when nothing is queued, so retransmission
// schedules run instantly.
type fakeServer struct {
	t      *testing.T
	clock  time.Time
	sent   []*dhcpMessage
	to     [][4]byte
	queue  [][]byte
	answer func(m *dhcpMessage, to [4]byte) [][]byte
}

func (f *fakeServer) send(b []byte, to [4]byte) error {
	m, err := decodeDHCP(b)
	if err != nil {
		f.t.Fatalf("the client sent a message it cannot decode itself: %v", err)
	}
	if len(b) < 300 {
		f.t.Errorf("a %d-byte message: BOOTP's minimum is 300", len(b))
	}
	f.sent, f.to = append(f.sent, m), append(f.to, to)
	if f.answer != nil {
		f.queue = append(f.queue, f.answer(m, to)...)
	}
	return nil
}

func (f *fakeServer) recv(deadline time.Time) ([]byte, error) {
	if len(f.queue) > 0 {
		b := f.queue[0]
		f.queue = f.queue[1:]
		return b, nil
	}
	if deadline.After(f.clock) {
		f.clock = deadline
	}
	return nil, errRecvTimeout
}

func (f *fakeServer) close() error { return nil }

func (f *fakeServer) client() *dhcpClient {
	c := newDHCPClient("eth0", testMAC)
	c.now = func() time.Time { return f.clock }
	xid := uint32(0x1000)
	c.newXID = func() uint32 { xid++; return xid }
	return c
}

func (f *fakeServer) kinds() string {
	var s []string
	for _, m := range f.sent {
		s = append(s, messageTypeName(m.messageType()))
	}
	return strings.Join(s, " ")
}

func newFakeServer(t *testing.T, answer func(m *dhcpMessage, to [4]byte) [][]byte) *fakeServer {
	return &fakeServer{t: t, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), answer: answer}
}

// TestAcquire runs DISCOVER, OFFER, REQUEST, ACK against a server that
// also sends what the client must ignore: another client's reply and a
// malformed one.
func TestAcquire(t *testing.T) {
	addr := [4]byte{10, 0, 2, 15}
	f := newFakeServer(t, func(m *dhcpMessage, to [4]byte) [][]byte {
		switch m.messageType() {
		case dhcpDiscover:
			other := *m
			other.xid++
			return [][]byte{reply(&other, [4]byte{10, 0, 2, 16}, slirpOptions(dhcpOffer)), {1, 2, 3}, reply(m, addr, slirpOptions(dhcpOffer))}
		case dhcpRequest:
			return [][]byte{reply(m, addr, slirpOptions(dhcpAck))}
		}
		return nil
	})
	c := f.client()
	start := f.clock
	l, err := c.acquire(f, start.Add(dhcpAcquireWait))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.describe("eth0"); got != "eth0 10.0.2.15/24 via 10.0.2.2 (dhcp from 10.0.2.2, lease 24h0m0s)" {
		t.Errorf("describe = %q", got)
	}
	if got := l.resolvConf(); got != "nameserver 10.0.2.3\n" {
		t.Errorf("resolv.conf = %q", got)
	}
	if l.t1 != 12*time.Hour || l.t2 != 21*time.Hour || !l.offered.Equal(start) {
		t.Errorf("T1 %v T2 %v offered %v", l.t1, l.t2, l.offered)
	}
	if f.kinds() != "DISCOVER REQUEST" {
		t.Fatalf("sent %s", f.kinds())
	}
	d, r := f.sent[0], f.sent[1]
	if d.xid != r.xid || d.flags != flagBroadcast || d.chaddr != testMAC || d.op != bootRequest {
		t.Errorf("DISCOVER %+v, REQUEST %+v", d, r)
	}
	if ip, _ := r.addr(optRequestedIP); ip != addr {
		t.Errorf("REQUEST asks for %v", ip)
	}
	if id, _ := r.addr(optServerID); id != [4]byte{10, 0, 2, 2} {
		t.Errorf("REQUEST names server %v", id)
	}
	if !bytes.Equal(r.options[optParamRequest], requestedOptions) {
		t.Errorf("parameter request list %v", r.options[optParamRequest])
	}
	for _, to := range f.to {
		if to != broadcastAddr {
			t.Errorf("sent to %v before having an address", to)
		}
	}
}

// TestAcquireNakThenAck starts over after a NAK, with a new transaction.
func TestAcquireNakThenAck(t *testing.T) {
	naks := 1
	f := newFakeServer(t, func(m *dhcpMessage, to [4]byte) [][]byte {
		switch m.messageType() {
		case dhcpDiscover:
			return [][]byte{reply(m, [4]byte{10, 0, 2, 15}, slirpOptions(dhcpOffer))}
		case dhcpRequest:
			if naks > 0 {
				naks--
				o := slirpOptions(dhcpNak)
				o[optMessage] = []byte("address taken")
				return [][]byte{reply(m, [4]byte{}, o)}
			}
			return [][]byte{reply(m, [4]byte{10, 0, 2, 15}, slirpOptions(dhcpAck))}
		}
		return nil
	})
	if _, err := f.client().acquire(f, f.clock.Add(dhcpAcquireWait)); err != nil {
		t.Fatal(err)
	}
	if f.kinds() != "DISCOVER REQUEST DISCOVER REQUEST" || f.sent[0].xid == f.sent[2].xid {
		t.Errorf("sent %s, xids %x %x", f.kinds(), f.sent[0].xid, f.sent[2].xid)
	}
}

// TestAcquireFails gives up at the deadline with an error that names the
// NIC, what was sent and what came back.
func TestAcquireFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(m *dhcpMessage, to [4]byte) [][]byte
		want   []string
	}{
		{"silent", nil, []string{"no DHCP lease on eth0 within 30s", "DISCOVER", "received nothing"}},
		{"naks", func(m *dhcpMessage, to [4]byte) [][]byte {
			if m.messageType() == dhcpDiscover {
				return [][]byte{reply(m, [4]byte{10, 0, 2, 15}, slirpOptions(dhcpOffer))}
			}
			o := slirpOptions(dhcpNak)
			o[optMessage] = []byte("no")
			return [][]byte{reply(m, [4]byte{}, o)}
		}, []string{"REQUEST", `NAK from 10.0.2.2 ("no")`}},
		{"ack without lease time", func(m *dhcpMessage, to [4]byte) [][]byte {
			kind := byte(dhcpOffer)
			if m.messageType() == dhcpRequest {
				kind = dhcpAck
			}
			o := slirpOptions(kind)
			delete(o, optLeaseTime)
			return [][]byte{reply(m, [4]byte{10, 0, 2, 15}, o)}
		}, []string{"unusable ACK from 10.0.2.2: ACK has no lease time"}},
		{"garbage", func(m *dhcpMessage, to [4]byte) [][]byte {
			return [][]byte{make([]byte, 300)}
		}, []string{"malformed reply (not a DHCP message: no magic cookie)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, tc.answer)
			start := f.clock
			_, err := f.client().acquire(f, start.Add(dhcpAcquireWait))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if f.clock.Sub(start) != dhcpAcquireWait {
				t.Errorf("gave up after %v", f.clock.Sub(start))
			}
			// Retransmissions back off: 1+2+4+8+8+8 s fit in 30 s.
			if tc.answer == nil && len(f.sent) != 6 {
				t.Errorf("%d DISCOVERs in 30s", len(f.sent))
			}
		})
	}
}

// TestRenew renews with the server that gave the lease until T2, then
// with any server, and reports a NAK or the lease's end.
func TestRenew(t *testing.T) {
	addr := [4]byte{10, 0, 2, 15}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	held := func() *lease {
		return &lease{server: [4]byte{10, 0, 2, 2}, addr: addr, bits: 24, time: 24 * time.Hour, t1: 12 * time.Hour, t2: 21 * time.Hour, offered: base}
	}
	t.Run("renewing", func(t *testing.T) {
		f := newFakeServer(t, func(m *dhcpMessage, to [4]byte) [][]byte {
			return [][]byte{reply(m, addr, slirpOptions(dhcpAck))}
		})
		f.clock = base.Add(12 * time.Hour)
		l, err := f.client().renew(f, held())
		if err != nil {
			t.Fatal(err)
		}
		if !l.offered.Equal(f.clock) || l.addr != addr {
			t.Errorf("renewed lease %+v", l)
		}
		m := f.sent[0]
		if f.to[0] != [4]byte{10, 0, 2, 2} || m.ciaddr != addr || m.flags != 0 || m.options[optRequestedIP] != nil || m.options[optServerID] != nil {
			t.Errorf("renewal REQUEST to %v: %+v", f.to[0], m)
		}
	})
	t.Run("rebinding", func(t *testing.T) {
		f := newFakeServer(t, func(m *dhcpMessage, to [4]byte) [][]byte {
			if to != broadcastAddr {
				return nil // the lease's server is gone
			}
			o := slirpOptions(dhcpAck)
			o[optServerID] = []byte{10, 0, 2, 4}
			return [][]byte{reply(m, addr, o)}
		})
		f.clock = base.Add(12 * time.Hour)
		l, err := f.client().renew(f, held())
		if err != nil {
			t.Fatal(err)
		}
		if l.server != [4]byte{10, 0, 2, 4} || !l.offered.After(base.Add(21*time.Hour-time.Second)) {
			t.Errorf("rebound lease %+v", l)
		}
		// Half the time left each time, at least a minute: 12h of
		// renewing is about a dozen requests, not thousands.
		if n := len(f.sent); n < 3 || n > 20 {
			t.Errorf("%d REQUESTs", n)
		}
	})
	t.Run("nak", func(t *testing.T) {
		f := newFakeServer(t, func(m *dhcpMessage, to [4]byte) [][]byte {
			return [][]byte{reply(m, [4]byte{}, slirpOptions(dhcpNak))}
		})
		f.clock = base.Add(12 * time.Hour)
		if _, err := f.client().renew(f, held()); err == nil || !strings.Contains(err.Error(), "NAK from 10.0.2.2") {
			t.Errorf("renew = %v", err)
		}
	})
	t.Run("silence", func(t *testing.T) {
		f := newFakeServer(t, nil)
		f.clock = base.Add(12 * time.Hour)
		if _, err := f.client().renew(f, held()); err == nil || !strings.Contains(err.Error(), "lease ended without an ACK") {
			t.Errorf("renew = %v", err)
		}
		if !f.clock.Equal(base.Add(24 * time.Hour)) {
			t.Errorf("gave up at %v", f.clock)
		}
	})
}

func TestDecodeDHCPRejects(t *testing.T) {
	good := reply(&dhcpMessage{xid: 1, chaddr: testMAC}, [4]byte{10, 0, 2, 15}, slirpOptions(dhcpAck))
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	opts := dhcpFixedLen + 4
	for name, b := range map[string][]byte{
		"short":             good[:dhcpMinLen-1],
		"no cookie":         mutate(func(b []byte) []byte { b[dhcpFixedLen] = 0; return b }),
		"not ethernet":      mutate(func(b []byte) []byte { b[1] = 6; return b }),
		"option past end":   mutate(func(b []byte) []byte { return append(b[:opts], optDNS, 200, 1, 2, 3) }),
		"option no length":  mutate(func(b []byte) []byte { return append(b[:opts], optPad, optDNS) }),
		"no end option":     mutate(func(b []byte) []byte { return append(b[:opts], optDNS, 4, 1, 2, 3, 4) }),
		"only pads, no end": mutate(func(b []byte) []byte { return append(b[:opts], 0, 0, 0) }),
	} {
		if _, err := decodeDHCP(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := decodeDHCP(good); err != nil {
		t.Errorf("good: %v", err)
	}
}

// TestEncodeLongOption splits an option longer than 255 bytes and decode
// joins it again (RFC 3396).
func TestEncodeLongOption(t *testing.T) {
	long := bytes.Repeat([]byte{7}, 600)
	m := &dhcpMessage{op: bootRequest, options: map[byte][]byte{optMessageType: {dhcpRequest}, optClientID: long}}
	got, err := decodeDHCP(m.encode([]byte{optMessageType, optClientID}))
	if err != nil || !bytes.Equal(got.options[optClientID], long) {
		t.Errorf("decoded %d bytes, %v", len(got.options[optClientID]), err)
	}
}

func TestLeaseFromAck(t *testing.T) {
	ack := func(edit func(o map[byte][]byte)) *dhcpMessage {
		o := slirpOptions(dhcpAck)
		edit(o)
		return &dhcpMessage{yiaddr: [4]byte{10, 128, 0, 5}, options: o}
	}
	// A GCP-like lease: a /32, the gateway reachable through classless
	// routes (which override the router option), a search domain, a
	// 1460-byte MTU, T1 and T2 of the server's own.
	l, err := leaseFromAck(ack(func(o map[byte][]byte) {
		o[optSubnetMask] = []byte{255, 255, 255, 255}
		o[optClasslessRoutes] = []byte{32, 10, 128, 0, 1, 0, 0, 0, 0, 0, 10, 128, 0, 1}
		o[optDomainName] = []byte("c.project.internal\x00")
		o[optMTU] = []byte{0x05, 0xb4}
		o[optDNS] = []byte{169, 254, 169, 254, 8, 8, 8, 8, 1, 1, 1, 1, 9, 9, 9, 9}
		o[optRenewalTime] = []byte{0, 0, 0, 100}
		o[optRebindingTime] = []byte{0, 0, 0, 200}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.describe("ens4"); got != "ens4 10.128.0.5/32 via 10.128.0.1 (dhcp from 10.0.2.2, lease 24h0m0s, mtu 1460)" {
		t.Errorf("describe = %q", got)
	}
	if len(l.routes) != 2 || routeString(l.routes[0]) != "10.128.0.1/32 on link" || routeString(l.routes[1]) != "0.0.0.0/0 via 10.128.0.1" {
		t.Errorf("routes %+v", l.routes)
	}
	if got := l.resolvConf(); got != "nameserver 169.254.169.254\nnameserver 8.8.8.8\nnameserver 1.1.1.1\nsearch c.project.internal\n" {
		t.Errorf("resolv.conf %q", got)
	}
	if l.t1 != 100*time.Second || l.t2 != 200*time.Second {
		t.Errorf("T1 %v T2 %v", l.t1, l.t2)
	}

	for name, tc := range map[string]struct {
		edit func(o map[byte][]byte)
		want string // an error, or "" to check with check
		chk  func(l *lease) bool
	}{
		"no server id":        {func(o map[byte][]byte) { delete(o, optServerID) }, "no server identifier", nil},
		"server id too short": {func(o map[byte][]byte) { o[optServerID] = []byte{10, 0} }, "no server identifier", nil},
		"mask with holes":     {func(o map[byte][]byte) { o[optSubnetMask] = []byte{255, 0, 255, 0} }, "not contiguous", nil},
		"route bits > 32":     {func(o map[byte][]byte) { o[optClasslessRoutes] = []byte{33, 0, 0, 0, 0, 0, 0, 0, 0, 0} }, "prefix length 33", nil},
		"route truncated":     {func(o map[byte][]byte) { o[optClasslessRoutes] = []byte{24, 10, 0, 2, 10, 0} }, "truncated", nil},
		"route host bits":     {func(o map[byte][]byte) { o[optClasslessRoutes] = []byte{8, 10, 0, 0, 0, 0} }, "", nil},
		"no lease time":       {func(o map[byte][]byte) { delete(o, optLeaseTime) }, "no lease time", nil},
		"tiny MTU ignored":    {func(o map[byte][]byte) { o[optMTU] = []byte{0, 68} }, "", func(l *lease) bool { return l.mtu == 0 }},
		"odd DNS ignored":     {func(o map[byte][]byte) { o[optDNS] = []byte{1, 2, 3} }, "", func(l *lease) bool { return l.dns == nil }},
		"zero DNS skipped":    {func(o map[byte][]byte) { o[optDNS] = []byte{0, 0, 0, 0, 10, 0, 2, 3} }, "", func(l *lease) bool { return len(l.dns) == 1 && l.dns[0] == [4]byte{10, 0, 2, 3} }},
		"empty routes option": {func(o map[byte][]byte) { o[optClasslessRoutes] = []byte{} }, "", func(l *lease) bool { gw, ok := l.gateway(); return ok && gw == [4]byte{10, 0, 2, 2} }},
		"hostile domain":      {func(o map[byte][]byte) { o[optDomainName] = []byte("x\nnameserver 6.6.6.6") }, "", func(l *lease) bool { return l.domain == "" }},
		"no mask: classful":   {func(o map[byte][]byte) { delete(o, optSubnetMask) }, "", func(l *lease) bool { return l.bits == 8 }},
		"infinite lease":      {func(o map[byte][]byte) { o[optLeaseTime] = []byte{255, 255, 255, 255} }, "", func(l *lease) bool { return l.t1 == infiniteLease && l.t2 == infiniteLease }},
		"T1 after T2": {func(o map[byte][]byte) {
			o[optRenewalTime] = []byte{0, 0, 0, 90}
			o[optRebindingTime] = []byte{0, 0, 0, 60}
		}, "", func(l *lease) bool { return l.t1 == 60*time.Second && l.t2 == 60*time.Second }},
		"T2 after lease": {func(o map[byte][]byte) {
			o[optLeaseTime] = []byte{0, 0, 0, 80}
			o[optRebindingTime] = []byte{0, 0, 1, 0}
		}, "", func(l *lease) bool { return l.t1 == 40*time.Second && l.t2 == 70*time.Second }},
	} {
		l, err := leaseFromAck(ack(tc.edit))
		switch {
		case name == "route host bits":
			// 10.0.0.0/8 written with a host byte would be wrong; this
			// one is right (one significant byte), so it must pass.
			if err != nil || len(l.routes) != 1 || routeString(l.routes[0]) != "10.0.0.0/8 on link" {
				t.Errorf("%s: %+v %v", name, l, err)
			}
		case tc.want != "":
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want %q", name, err, tc.want)
			}
		case err != nil || !tc.chk(l):
			t.Errorf("%s: %+v %v", name, l, err)
		}
	}
	if _, err := leaseFromAck(&dhcpMessage{options: slirpOptions(dhcpAck)}); err == nil {
		t.Error("an ACK without yiaddr gave a lease")
	}
}

func TestClasslessRoutesHostBits(t *testing.T) {
	// A /12 written as 10.17 has a bit beyond the prefix set.
	if _, err := classlessRoutes([]byte{12, 10, 17, 0, 0, 0, 0}); err == nil || !strings.Contains(err.Error(), "host bits") {
		t.Errorf("classlessRoutes = %v", err)
	}
}

func TestMaskBits(t *testing.T) {
	for _, tc := range []struct {
		m    [4]byte
		bits int
		ok   bool
	}{
		{[4]byte{255, 255, 255, 0}, 24, true},
		{[4]byte{255, 255, 255, 255}, 32, true},
		{[4]byte{0, 0, 0, 0}, 0, true},
		{[4]byte{255, 255, 128, 0}, 17, true},
		{[4]byte{255, 0, 255, 0}, 0, false},
		{[4]byte{0, 0, 0, 1}, 0, false},
	} {
		if bits, ok := maskBits(tc.m); bits != tc.bits || ok != tc.ok {
			t.Errorf("maskBits(%v) = %d %v", tc.m, bits, ok)
		}
	}
}

func TestUDP4Packet(t *testing.T) {
	payload := []byte("a DHCP message, say")
	p := udp4Packet([4]byte{}, broadcastAddr, dhcpClientPort, dhcpServerPort, payload)
	if checksum(0, p[:20]) != 0xffff {
		t.Error("IP header checksum does not verify")
	}
	// UDP checksum over the pseudo header and the datagram verifies.
	u := p[20:]
	sum := checksum(0, p[12:20])
	sum = checksum(sum, []byte{0, 17, byte(len(u) >> 8), byte(len(u))})
	if checksum(sum, u) != 0xffff {
		t.Error("UDP checksum does not verify")
	}
	if got, ok := udp4Payload(p, dhcpClientPort, dhcpServerPort); !ok || !bytes.Equal(got, payload) {
		t.Errorf("payload %q %v", got, ok)
	}
	if _, ok := udp4Payload(p, dhcpServerPort, dhcpClientPort); ok {
		t.Error("the wrong ports were accepted")
	}
	frag := append([]byte(nil), p...)
	binary.BigEndian.PutUint16(frag[6:], 0x2000) // more fragments
	if _, ok := udp4Payload(frag, dhcpClientPort, dhcpServerPort); ok {
		t.Error("a fragment was accepted")
	}
	long := append([]byte(nil), p...)
	binary.BigEndian.PutUint16(long[24:], uint16(len(u)+1)) // UDP length past the datagram
	if _, ok := udp4Payload(long, dhcpClientPort, dhcpServerPort); ok {
		t.Error("a UDP length past the end was accepted")
	}
	if _, ok := udp4Payload(p[:30], dhcpClientPort, dhcpServerPort); ok {
		t.Error("a truncated datagram was accepted")
	}
}

// FuzzDHCPReply feeds arbitrary bytes to everything that reads what a
// server sends: the IPv4/UDP framing, the DHCP decoder and the lease,
// rendered as kitinit would. None may panic, and a lease must be sane.
// Seeds: testdata/fuzz/FuzzDHCPReply.
//
//	go test ./boot/kitinit -run '^$' -fuzz FuzzDHCPReply -fuzztime 1m
func FuzzDHCPReply(f *testing.F) {
	f.Add(reply(&dhcpMessage{xid: 1, chaddr: testMAC}, [4]byte{10, 0, 2, 15}, slirpOptions(dhcpAck)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, ok := udp4Payload(b, dhcpServerPort, dhcpClientPort); ok {
			decodeDHCP(p)
		}
		m, err := decodeDHCP(b)
		if err != nil {
			return
		}
		m.messageType()
		nakMessage(m)
		l, err := leaseFromAck(m)
		if err != nil {
			return
		}
		if l.bits < 0 || l.bits > 32 || l.t1 > l.t2 || l.t2 > l.time || l.mtu != 0 && l.mtu < 576 {
			t.Errorf("insane lease %+v", l)
		}
		if strings.Count(l.resolvConf(), "\n") > 4 {
			t.Errorf("resolv.conf with more than 3 servers and a domain: %q", l.resolvConf())
		}
		l.describe("eth0")
		l.gateway()
	})
}
