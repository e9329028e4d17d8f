//go:build linux

package kitinit

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The DHCP client's sockets. Before the NIC has an address, a packet
// socket sends and receives whole IPv4/UDP datagrams on it: the kernel
// would not route a reply addressed to an address the NIC does not have
// yet, whatever the broadcast flag says to servers that ignore it. Once
// leased, renewals use an ordinary UDP socket bound to the NIC.

// packetTransport is an AF_PACKET socket on one NIC, carrying IPv4.
type packetTransport struct {
	fd    int
	index int
	buf   []byte
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func openPacketTransport(index int) (*packetTransport, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, errors.New("packet socket: " + err.Error())
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: index}); err != nil {
		unix.Close(fd)
		return nil, errors.New("bind packet socket: " + err.Error())
	}
	return &packetTransport{fd: fd, index: index, buf: make([]byte, 65536)}, nil
}

func (p *packetTransport) send(msg []byte, to [4]byte) error {
	pkt := udp4Packet([4]byte{}, to, dhcpClientPort, dhcpServerPort, msg)
	// Only broadcasts go out this way (the client has no address yet, so
	// it cannot know a server's hardware address).
	return unix.Sendto(p.fd, pkt, 0, &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_IP), Ifindex: p.index,
		Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	})
}

func (p *packetTransport) recv(deadline time.Time) ([]byte, error) {
	for {
		if err := waitReadable(p.fd, deadline); err != nil {
			return nil, err
		}
		n, from, err := unix.Recvfrom(p.fd, p.buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The socket also sees what the NIC sends, kitinit's own
		// requests included.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if payload, ok := udp4Payload(p.buf[:n], dhcpServerPort, dhcpClientPort); ok {
			return append([]byte(nil), payload...), nil
		}
	}
}

func (p *packetTransport) close() error { return unix.Close(p.fd) }

// udpTransport is a UDP socket on the client port, bound to one NIC.
type udpTransport struct {
	fd  int
	buf []byte
}

func openUDPTransport(nic string) (*udpTransport, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, errors.New("UDP socket: " + err.Error())
	}
	setup := func() error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
			return err
		}
		if err := unix.BindToDevice(fd, nic); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Port: dhcpClientPort})
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return nil, errors.New("UDP socket on " + nic + " port " + strconv.Itoa(dhcpClientPort) + ": " + err.Error())
	}
	return &udpTransport{fd: fd, buf: make([]byte, 65536)}, nil
}

func (u *udpTransport) send(msg []byte, to [4]byte) error {
	return unix.Sendto(u.fd, msg, 0, &unix.SockaddrInet4{Port: dhcpServerPort, Addr: to})
}

func (u *udpTransport) recv(deadline time.Time) ([]byte, error) {
	for {
		if err := waitReadable(u.fd, deadline); err != nil {
			return nil, err
		}
		n, _, err := unix.Recvfrom(u.fd, u.buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), u.buf[:n]...), nil
	}
}

func (u *udpTransport) close() error { return unix.Close(u.fd) }

// waitReadable polls fd until it is readable or deadline passes
// (errRecvTimeout).
func waitReadable(fd int, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errRecvTimeout
		}
		ms := int(min(left, time.Hour).Milliseconds()) + 1
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// udp4Packet builds an IPv4 datagram carrying one UDP datagram.
func udp4Packet(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	const ipLen, udpLen = 20, 8
	total := ipLen + udpLen + len(payload)
	b := make([]byte, total)
	b[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	b[8] = 64 // TTL
	b[9] = unix.IPPROTO_UDP
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	binary.BigEndian.PutUint16(b[10:], ^checksum(0, b[:ipLen]))
	u := b[ipLen:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(payload)))
	copy(u[udpLen:], payload)
	// The pseudo header: addresses, protocol, UDP length.
	sum := checksum(0, src[:])
	sum = checksum(sum, dst[:])
	sum = checksum(sum, []byte{0, unix.IPPROTO_UDP, byte(len(u) >> 8), byte(len(u))})
	c := ^checksum(sum, u)
	if c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

// checksum adds b to the ones' complement sum (RFC 1071), folded.
func checksum(sum uint16, b []byte) uint16 {
	s := uint32(sum)
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// udp4Payload returns the UDP payload of an IPv4 datagram from sport to
// dport, or false for anything else (other protocols and ports,
// fragments, and lengths that do not add up). Checksums are not checked:
// with checksum offload a received buffer may carry a partial one, and
// the DHCP layer matches the transaction ID and hardware address anyway.
func udp4Payload(b []byte, sport, dport uint16) ([]byte, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl+8 || total > len(b) {
		return nil, false
	}
	if b[9] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(b[6:])&0x3fff != 0 { // MF or an offset: a fragment
		return nil, false
	}
	u := b[ihl:total]
	if binary.BigEndian.Uint16(u[0:]) != sport || binary.BigEndian.Uint16(u[2:]) != dport {
		return nil, false
	}
	l := int(binary.BigEndian.Uint16(u[4:]))
	if l < 8 || l > len(u) {
		return nil, false
	}
	return u[8:l], true
}

// randomXID is a transaction ID. Early in a boot the kernel's random pool
// may not be ready; the ID then comes from the clock, which is enough to
// tell this client's exchanges apart.
func randomXID() uint32 {
	var b [4]byte
	if n, err := unix.Getrandom(b[:], unix.GRND_NONBLOCK); err == nil && n == 4 {
		return binary.BigEndian.Uint32(b[:])
	}
	return uint32(time.Now().UnixNano())
}
