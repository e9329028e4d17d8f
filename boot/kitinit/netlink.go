//go:build linux

package kitinit

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

const (
	nicWait = 5 * time.Second
	nicPoll = 10 * time.Millisecond
)

// ConfigureNetwork waits for the first NIC and brings it up, then
// configures it statically (address, default route, /etc/resolv.conf) or
// by DHCP. A DHCP lease is kept in the background: later trouble with it
// goes to report.
func (LinuxSystem) ConfigureNetwork(n *initproto.Network, report func(error)) (string, error) {
	var static *lease
	switch n.Mode {
	case initproto.NetworkStatic:
		var err error
		if static, err = staticLease(n); err != nil {
			return "", err
		}
	case initproto.NetworkDHCP:
	default:
		return "", errors.New("network mode " + strconv.Quote(n.Mode) + "; valid: " + initproto.NetworkStatic + ", " + initproto.NetworkDHCP)
	}
	nic, err := waitNIC("/sys/class/net", nicWait)
	if err != nil {
		return "", err
	}
	index, err := ifIndex(nic, nicWait)
	if err != nil {
		return "", errors.New("index of " + nic + ": " + err.Error())
	}
	if err := linkUp(nic); err != nil {
		return "", errors.New("bring " + nic + " up: " + err.Error())
	}
	if static != nil {
		if err := applyLease(nic, index, nil, static, report); err != nil {
			return "", err
		}
		desc := nic + " " + n.Address
		if n.Gateway != "" {
			desc += " via " + n.Gateway
		}
		return desc, nil
	}
	mac, err := hardwareAddr(nic)
	if err != nil {
		return "", err
	}
	c := newDHCPClient(nic, mac)
	l, err := c.acquireOnce(index, dhcpAcquireWait)
	if err != nil {
		return "", err
	}
	if err := applyLease(nic, index, nil, l, report); err != nil {
		return "", err
	}
	go c.keep(index, l, report)
	return l.describe(nic), nil
}

// staticLease is a static configuration in the form a lease has.
func staticLease(n *initproto.Network) (*lease, error) {
	addr, bits, err := parseCIDR4(n.Address)
	if err != nil {
		return nil, errors.New("network address must be an IPv4 CIDR: " + strconv.Quote(n.Address))
	}
	l := &lease{addr: addr, bits: bits}
	if n.Gateway != "" {
		gw, err := parseIPv4(n.Gateway)
		if err != nil {
			return nil, errors.New("network gateway must be an IPv4 address: " + strconv.Quote(n.Gateway))
		}
		l.routes = []route{{gateway: gw}}
	}
	if n.DNS != "" {
		dns, err := parseIPv4(n.DNS)
		if err != nil {
			return nil, errors.New("network DNS server must be an IPv4 address: " + strconv.Quote(n.DNS))
		}
		l.dns = [][4]byte{dns}
	}
	return l, nil
}

// acquireOnce gets a lease on the NIC with the given index, within wait.
func (c *dhcpClient) acquireOnce(index int, wait time.Duration) (*lease, error) {
	t, err := openPacketTransport(index)
	if err != nil {
		return nil, errors.New("DHCP on " + c.nic + ": " + err.Error())
	}
	defer t.close()
	return c.acquire(t, c.now().Add(wait))
}

// keep renews the lease at T1 for as long as the guest runs (`run -d`
// machines live for days). A lease that is lost (NAK, or its end without
// an ACK) stops being used: the address goes, and a new lease is sought
// until one is had.
func (c *dhcpClient) keep(index int, l *lease, report func(error)) {
	// A server handing out leases of a few seconds would otherwise keep
	// kitinit renewing in a tight loop.
	const minCycle = 10 * time.Second
	for l.time != infiniteLease {
		time.Sleep(max(time.Until(l.offered.Add(l.t1)), minCycle))
		var next *lease
		t, err := openUDPTransport(c.nic)
		if err != nil {
			// The lease still holds until its end.
			report(errors.New("DHCP renewal on " + c.nic + ": " + err.Error()))
			time.Sleep(time.Until(l.offered.Add(l.time)))
		} else {
			next, err = c.renew(t, l)
			t.close()
		}
		if err != nil {
			report(errors.New("DHCP lease of " + ipString(l.addr) + " on " + c.nic + " lost: " + err.Error() + "; asking for a new one"))
			if err := delAddress(index, l.addr, l.bits); err != nil && err != unix.EADDRNOTAVAIL {
				report(errors.New("remove " + ipString(l.addr) + " from " + c.nic + ": " + err.Error()))
			}
			for wait := dhcpAcquireWait; next == nil; wait = min(wait*2, 10*time.Minute) {
				start := time.Now()
				if next, err = c.acquireOnce(index, wait); err != nil {
					report(err)
					time.Sleep(time.Until(start.Add(wait))) // a socket that failed at once
				}
			}
			l = nil // the old address is gone: apply from scratch
		}
		if err := applyLease(c.nic, index, l, next, report); err != nil {
			report(err)
		}
		if l == nil || l.addr != next.addr {
			report(errors.New("DHCP: " + next.describe(c.nic) + " now"))
		}
		l = next
	}
}

// applyLease configures the NIC from a lease (old, if not nil, is the one
// it had): MTU, address, routes, and /etc/resolv.conf when the lease names
// DNS servers. A MTU the NIC refuses is reported, not fatal: the link
// works at its default one.
func applyLease(nic string, index int, old, l *lease, report func(error)) error {
	if l.mtu != 0 && (old == nil || old.mtu != l.mtu) {
		if err := setMTU(nic, l.mtu); err != nil {
			report(errors.New("MTU " + strconv.Itoa(l.mtu) + " on " + nic + " (from DHCP): " + err.Error()))
		}
	}
	if old != nil && (old.addr != l.addr || old.bits != l.bits) {
		if err := delAddress(index, old.addr, old.bits); err != nil && err != unix.EADDRNOTAVAIL {
			return errors.New("remove " + ipString(old.addr) + " from " + nic + ": " + err.Error())
		}
	}
	cidr := ipString(l.addr) + "/" + strconv.Itoa(l.bits)
	if err := addAddress(index, l.addr, l.bits); err != nil {
		return errors.New("address " + cidr + " on " + nic + ": " + err.Error())
	}
	for _, r := range l.routes {
		// A gateway outside the address's prefix (clouds hand out /32s)
		// is still on the link: say so, or the kernel refuses the route.
		onlink := r.gateway != ([4]byte{}) && !inPrefix(r.gateway, l.addr, l.bits)
		if err := addRoute(index, r, onlink); err != nil {
			return errors.New("route " + routeString(r) + " on " + nic + ": " + err.Error())
		}
	}
	if len(l.dns) > 0 {
		if err := os.WriteFile("/etc/resolv.conf", []byte(l.resolvConf()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hardwareAddr reads a NIC's Ethernet address from sysfs.
func hardwareAddr(nic string) ([6]byte, error) {
	var mac [6]byte
	b, err := os.ReadFile("/sys/class/net/" + nic + "/address")
	if err != nil {
		return mac, errors.New("hardware address of " + nic + ": " + err.Error())
	}
	s := strings.TrimSpace(string(b))
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return mac, errors.New("hardware address of " + nic + " is " + strconv.Quote(s) + ", not Ethernet's; DHCP needs one")
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return mac, errors.New("hardware address of " + nic + ": " + strconv.Quote(s))
		}
		mac[i] = byte(v)
	}
	return mac, nil
}

func setMTU(nic string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(nic)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	return unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr)
}

// ifIndex asks the kernel for an interface's index, for up to wait: the
// interface's sysfs directory (what waitNIC sees) appears while the device
// is still being registered, before its attributes and index are there.
func ifIndex(name string, wait time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(wait)
	for {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return 0, err
		}
		err = unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr)
		if err == nil {
			return int(ifr.Uint32()), nil
		}
		if time.Now().After(deadline) {
			return 0, err
		}
		time.Sleep(nicPoll)
	}
}

// waitNIC returns the first non-loopback interface, polling until one shows
// up. Interfaces backed by a device are preferred to virtual ones.
func waitNIC(dir string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		var virtual string
		for _, name := range readDirNames(dir) {
			if name == "lo" {
				continue
			}
			var st unix.Stat_t
			if unix.Lstat(dir+"/"+name+"/device", &st) == nil {
				return name, nil
			}
			if virtual == "" {
				virtual = name
			}
		}
		if time.Now().After(deadline) {
			if virtual != "" {
				return virtual, nil
			}
			return "", errors.New("no network interface appeared within " + wait.String())
		}
		time.Sleep(nicPoll)
	}
}

// rtattr appends a route attribute.
func rtattr(b []byte, typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func addAddress(index int, a [4]byte, bits int) error {
	return netlinkDo(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, addressMsg(index, a, bits))
}

func delAddress(index int, a [4]byte, bits int) error {
	return netlinkDo(unix.RTM_DELADDR, 0, addressMsg(index, a, bits))
}

func addressMsg(index int, a [4]byte, bits int) []byte {
	bcast := a
	for i := bits; i < 32; i++ {
		bcast[i/8] |= 0x80 >> (i % 8)
	}
	msg := []byte{unix.AF_INET, byte(bits), 0, unix.RT_SCOPE_UNIVERSE}
	msg = binary.NativeEndian.AppendUint32(msg, uint32(index))
	msg = rtattr(msg, unix.IFA_LOCAL, a[:])
	msg = rtattr(msg, unix.IFA_ADDRESS, a[:])
	if bits < 31 {
		msg = rtattr(msg, unix.IFA_BROADCAST, bcast[:])
	}
	return msg
}

// addRoute adds (or replaces) a route out of the NIC: through a gateway,
// or, with a zero gateway, to a destination on the link. onlink tells the
// kernel that the gateway is on the link although no prefix of the NIC's
// contains it.
func addRoute(index int, r route, onlink bool) error {
	scope := byte(unix.RT_SCOPE_UNIVERSE)
	if r.gateway == ([4]byte{}) {
		scope = unix.RT_SCOPE_LINK
	}
	msg := []byte{unix.AF_INET, byte(r.bits), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, scope, unix.RTN_UNICAST}
	var flags uint32
	if onlink {
		flags = unix.RTNH_F_ONLINK
	}
	msg = binary.NativeEndian.AppendUint32(msg, flags)
	if r.bits > 0 {
		msg = rtattr(msg, unix.RTA_DST, r.dst[:])
	}
	if r.gateway != ([4]byte{}) {
		msg = rtattr(msg, unix.RTA_GATEWAY, r.gateway[:])
	}
	var oif [4]byte
	binary.NativeEndian.PutUint32(oif[:], uint32(index))
	msg = rtattr(msg, unix.RTA_OIF, oif[:])
	return netlinkDo(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, msg)
}

// netlinkDo sends one rtnetlink request and waits for its acknowledgement.
func netlinkDo(typ uint16, flags uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	const seq = 1
	msg := binary.NativeEndian.AppendUint32(nil, uint32(unix.SizeofNlMsghdr+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, typ)
	msg = binary.NativeEndian.AppendUint16(msg, flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg = binary.NativeEndian.AppendUint32(msg, seq)
	msg = binary.NativeEndian.AppendUint32(msg, 0)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				break
			}
			if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR &&
				binary.NativeEndian.Uint32(b[8:]) == seq && l >= unix.SizeofNlMsghdr+4 {
				if errno := int32(binary.NativeEndian.Uint32(b[16:])); errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}
