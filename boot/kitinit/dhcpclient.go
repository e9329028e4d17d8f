//go:build linux

package kitinit

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// The DHCPv4 client's exchanges (RFC 2131 section 4.4), over a transport
// that the tests replace with an in-process server.

// dhcpTransport carries DHCP messages between the client port and the
// servers.
type dhcpTransport interface {
	// send transmits a message to a server (255.255.255.255: all).
	send(msg []byte, to [4]byte) error
	// recv returns the next DHCP message that reached the client port,
	// or errRecvTimeout once deadline has passed.
	recv(deadline time.Time) ([]byte, error)
	close() error
}

var errRecvTimeout = errors.New("no reply before the deadline")

var broadcastAddr = [4]byte{255, 255, 255, 255}

const (
	// dhcpAcquireWait bounds getting a lease at boot: clouds answer in
	// well under a second, and a boot must not hang on a silent link.
	dhcpAcquireWait = 30 * time.Second
	// dhcpRequestTries is how often a REQUEST is sent before the client
	// starts over with a DISCOVER.
	dhcpRequestTries = 3
)

// dhcpClient gets and keeps a lease for one NIC.
type dhcpClient struct {
	nic string
	mac [6]byte
	// firstWait is the first retransmission timeout; each retransmission
	// doubles it, up to maxWait (RFC 2131 suggests 4 s doubling to 64 s;
	// kitinit starts lower, as a boot is waiting).
	firstWait, maxWait time.Duration
	// minRenewWait is the shortest wait between renewal attempts (RFC
	// 2131 4.4.5: 60 s).
	minRenewWait time.Duration
	now          func() time.Time
	newXID       func() uint32
}

func newDHCPClient(nic string, mac [6]byte) *dhcpClient {
	return &dhcpClient{
		nic: nic, mac: mac,
		firstWait: time.Second, maxWait: 8 * time.Second, minRenewWait: time.Minute,
		now: time.Now, newXID: randomXID,
	}
}

// exchangeLog remembers what an exchange sent and what came back, for
// the error that says why no lease was had.
type exchangeLog struct {
	sent  map[string]int
	notes []string // the last few replies that were not what was wanted
	other int      // replies for other clients, ignored silently
}

func (e *exchangeLog) sentOne(kind string) {
	if e.sent == nil {
		e.sent = map[string]int{}
	}
	e.sent[kind]++
}

func (e *exchangeLog) note(s string) {
	const keep = 3
	if len(e.notes) == keep {
		e.notes = e.notes[1:]
	}
	e.notes = append(e.notes, s)
}

func (e *exchangeLog) String() string {
	var sent []string
	for _, k := range []string{"DISCOVER", "REQUEST"} {
		if n := e.sent[k]; n > 0 {
			sent = append(sent, strconv.Itoa(n)+" "+k)
		}
	}
	s := "sent " + strings.Join(sent, " and ")
	if len(sent) == 0 {
		s = "sent nothing"
	}
	switch {
	case len(e.notes) > 0:
		s += "; received: " + strings.Join(e.notes, "; ")
	case e.other > 0:
		s += "; received only " + strconv.Itoa(e.other) + " replies for other clients"
	default:
		s += "; received nothing"
	}
	return s
}

// acquire gets a lease from scratch: DISCOVER, OFFER, REQUEST, ACK, with
// retransmissions, until deadline.
func (c *dhcpClient) acquire(t dhcpTransport, deadline time.Time) (*lease, error) {
	var log exchangeLog
	start := c.now()
	pause := c.firstWait
	for round := 0; c.now().Before(deadline); round++ {
		if round > 0 {
			// A server that refuses at once must not make kitinit
			// spin: start over later each time.
			c.pause(t, pause, deadline)
			pause = min(pause*2, c.maxWait)
		}
		xid := c.newXID()
		discover := func() []byte {
			return c.message(dhcpDiscover, xid, start, [4]byte{}, nil).encode(optionOrder)
		}
		offer, err := c.exchange(t, "DISCOVER", discover, broadcastAddr, xid, deadline, c.firstWait, 0, &log, func(m *dhcpMessage) string {
			if m.messageType() != dhcpOffer {
				return "a " + messageTypeName(m.messageType()) + " where an OFFER was due"
			}
			if _, ok := m.addr(optServerID); !ok || m.yiaddr == ([4]byte{}) {
				return "an OFFER without an address or server identifier"
			}
			return ""
		})
		if err != nil {
			break
		}
		server, _ := offer.addr(optServerID)
		requested := offer.yiaddr
		request := func() []byte {
			m := c.message(dhcpRequest, xid, start, [4]byte{}, map[byte][]byte{
				optRequestedIP: requested[:],
				optServerID:    server[:],
			})
			return m.encode(optionOrder)
		}
		sentAt := c.now()
		ack, err := c.exchange(t, "REQUEST", request, broadcastAddr, xid, deadline, c.firstWait, dhcpRequestTries, &log, func(m *dhcpMessage) string {
			if id, _ := m.addr(optServerID); id != server {
				return "a reply from " + ipString(id) + ", not the server offering (" + ipString(server) + ")"
			}
			switch m.messageType() {
			case dhcpAck, dhcpNak:
				return ""
			}
			return "a " + messageTypeName(m.messageType()) + " where an ACK was due"
		})
		if err != nil {
			continue // no answer to the REQUEST: start over
		}
		if ack.messageType() == dhcpNak {
			log.note("NAK from " + ipString(server) + nakMessage(ack))
			continue
		}
		l, err := leaseFromAck(ack)
		if err != nil {
			log.note("an unusable ACK from " + ipString(server) + ": " + err.Error())
			continue
		}
		l.offered = sentAt
		return l, nil
	}
	return nil, errors.New("no DHCP lease on " + c.nic + " within " + deadline.Sub(start).Round(time.Second).String() + ": " + log.String())
}

// renew extends a lease: REQUESTs from the leased address, to its server
// until T2 (renewing), then to every server until the lease ends
// (rebinding). It returns the new lease, or an error once the lease is
// lost (a NAK, or the end of the lease without an ACK).
func (c *dhcpClient) renew(t dhcpTransport, l *lease) (*lease, error) {
	var log exchangeLog
	t2, end := l.offered.Add(l.t2), l.offered.Add(l.time)
	for _, phase := range []struct {
		to    [4]byte
		until time.Time
	}{{l.server, t2}, {broadcastAddr, end}} {
		for c.now().Before(phase.until) {
			xid := c.newXID()
			start := c.now()
			request := func() []byte {
				return c.message(dhcpRequest, xid, start, l.addr, nil).encode(optionOrder)
			}
			// RFC 2131 4.4.5: wait half the time left, at least a minute.
			wait := max(phase.until.Sub(start)/2, c.minRenewWait)
			deadline := minTime(start.Add(wait), phase.until)
			ack, err := c.exchange(t, "REQUEST", request, phase.to, xid, deadline, deadline.Sub(start), 1, &log, func(m *dhcpMessage) string {
				switch m.messageType() {
				case dhcpAck, dhcpNak:
					return ""
				}
				return "a " + messageTypeName(m.messageType()) + " where an ACK was due"
			})
			if err != nil {
				continue
			}
			if ack.messageType() == dhcpNak {
				id, _ := ack.addr(optServerID)
				return nil, errors.New("NAK from " + ipString(id) + nakMessage(ack))
			}
			nl, err := leaseFromAck(ack)
			if err != nil {
				log.note("an unusable ACK: " + err.Error())
				continue
			}
			nl.offered = start
			return nl, nil
		}
	}
	return nil, errors.New("lease ended without an ACK: " + log.String())
}

// pause waits for d (but not past deadline), dropping what arrives.
func (c *dhcpClient) pause(t dhcpTransport, d time.Duration, deadline time.Time) {
	until := minTime(c.now().Add(d), deadline)
	for c.now().Before(until) {
		if _, err := t.recv(until); err != nil && err != errRecvTimeout {
			return
		}
	}
}

// exchange sends a message and waits for a reply that accept takes (it
// returns "" for a wanted reply, else what was wrong with it),
// retransmitting after wait, then after twice as long each time (up to
// maxWait), until deadline, or until tries messages were sent when
// tries > 0.
func (c *dhcpClient) exchange(t dhcpTransport, kind string, build func() []byte, to [4]byte, xid uint32, deadline time.Time, wait time.Duration, tries int, log *exchangeLog, accept func(*dhcpMessage) string) (*dhcpMessage, error) {
	for try := 1; tries == 0 || try <= tries; try++ {
		if !c.now().Before(deadline) {
			break
		}
		if err := t.send(build(), to); err != nil {
			log.note("sending a " + kind + " failed: " + err.Error())
		} else {
			log.sentOne(kind)
		}
		until := minTime(c.now().Add(wait), deadline)
		for {
			b, err := t.recv(until)
			if err == errRecvTimeout {
				break
			}
			if err != nil {
				log.note("reading failed: " + err.Error())
				break
			}
			m, err := decodeDHCP(b)
			if err != nil {
				log.note("a malformed reply (" + err.Error() + ")")
				continue
			}
			if m.op != bootReply || m.xid != xid || m.chaddr != c.mac {
				log.other++
				continue
			}
			if why := accept(m); why != "" {
				log.note(why)
				continue
			}
			return m, nil
		}
		wait = max(min(wait*2, c.maxWait), wait)
	}
	return nil, errRecvTimeout
}

// optionOrder is the order options are written in: the message type
// first, as some servers expect.
var optionOrder = []byte{optMessageType, optRequestedIP, optServerID, optMaxMessageSize, optParamRequest}

// message builds a client message. secs counts from the start of the
// exchange, as servers and relays use it to prioritise.
func (c *dhcpClient) message(kind byte, xid uint32, start time.Time, ciaddr [4]byte, opts map[byte][]byte) *dhcpMessage {
	m := &dhcpMessage{
		op: bootRequest, xid: xid, ciaddr: ciaddr, chaddr: c.mac,
		secs:    uint16(min(c.now().Sub(start)/time.Second, 0xffff)),
		options: map[byte][]byte{},
	}
	if ciaddr == ([4]byte{}) {
		m.flags = flagBroadcast
	}
	for k, v := range opts {
		m.options[k] = v
	}
	m.options[optMessageType] = []byte{kind}
	m.options[optParamRequest] = requestedOptions
	// The largest message kitinit reads: an Ethernet frame's worth.
	m.options[optMaxMessageSize] = []byte{1500 >> 8, 1500 & 0xff}
	return m
}

func nakMessage(m *dhcpMessage) string {
	if v := m.options[optMessage]; len(v) > 0 {
		return " (" + strconv.Quote(string(v)) + ")"
	}
	return ""
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
