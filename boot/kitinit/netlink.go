package kitinit

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

const (
	nicWait = 5 * time.Second
	nicPoll = 10 * time.Millisecond
)

// ConfigureNetwork waits for the first NIC, gives it the static address,
// brings it up, adds the default route and writes /etc/resolv.conf.
func (LinuxSystem) ConfigureNetwork(n *initproto.Network) (string, error) {
	addr, bits, err := parseCIDR4(n.Address)
	if err != nil {
		return "", errors.New("network address must be an IPv4 CIDR: " + strconv.Quote(n.Address))
	}
	var gw [4]byte
	if n.Gateway != "" {
		if gw, err = parseIPv4(n.Gateway); err != nil {
			return "", errors.New("network gateway must be an IPv4 address: " + strconv.Quote(n.Gateway))
		}
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
	if err := addAddress(index, addr, bits); err != nil {
		return "", errors.New("address " + n.Address + " on " + nic + ": " + err.Error())
	}
	desc := nic + " " + n.Address
	if n.Gateway != "" {
		if err := addDefaultRoute(index, gw); err != nil {
			return "", errors.New("default route via " + n.Gateway + ": " + err.Error())
		}
		desc += " via " + n.Gateway
	}
	if n.DNS != "" {
		if err := os.WriteFile("/etc/resolv.conf", []byte("nameserver "+n.DNS+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	return desc, nil
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
	bcast := a
	for i := bits; i < 32; i++ {
		bcast[i/8] |= 0x80 >> (i % 8)
	}
	msg := []byte{unix.AF_INET, byte(bits), 0, unix.RT_SCOPE_UNIVERSE}
	msg = binary.NativeEndian.AppendUint32(msg, uint32(index))
	msg = rtattr(msg, unix.IFA_LOCAL, a[:])
	msg = rtattr(msg, unix.IFA_ADDRESS, a[:])
	msg = rtattr(msg, unix.IFA_BROADCAST, bcast[:])
	return netlinkDo(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, msg)
}

func addDefaultRoute(index int, g [4]byte) error {
	msg := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST}
	msg = binary.NativeEndian.AppendUint32(msg, 0)
	msg = rtattr(msg, unix.RTA_GATEWAY, g[:])
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
