package audit

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Port is a socket listening in the guest (TCP in LISTEN state, or a
// bound UDP socket), from /proc/net.
type Port struct {
	Proto string `json:"proto"` // tcp, tcp6, udp, udp6
	Addr  string `json:"addr"`
	Port  int    `json:"port"`
}

// ProcNetFiles are the guest files ListeningPorts reads: the root network
// namespace's sockets (a service with net: new has its own, not seen here).
var ProcNetFiles = []string{"tcp", "tcp6", "udp", "udp6"}

// GuestFile reads a file of a running guest (vm.VM's Stat content, say).
type GuestFile func(ctx context.Context, path string) ([]byte, error)

// ListeningPorts reads /proc/net/{tcp,tcp6,udp,udp6} in the guest.
func ListeningPorts(ctx context.Context, read GuestFile) ([]Port, error) {
	var out []Port
	for _, proto := range ProcNetFiles {
		data, err := read(ctx, "/proc/net/"+proto)
		if err != nil {
			return nil, fmt.Errorf("/proc/net/%s: %w", proto, err)
		}
		ports, err := parseProcNet(proto, data)
		if err != nil {
			return nil, fmt.Errorf("/proc/net/%s: %w", proto, err)
		}
		out = append(out, ports...)
	}
	return out, nil
}

// parseProcNet reads one /proc/net table: "sl local_address rem_address
// st ...", addresses as hex IP (host-endian 32-bit words):port.
func parseProcNet(proto string, data []byte) ([]Port, error) {
	var out []Port
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		// TCP: only LISTEN (0A); UDP: any bound socket (07, "close").
		if strings.HasPrefix(proto, "tcp") && f[3] != "0A" {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("bad address %q", f[1])
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", hexPort)
		}
		raw, err := hex.DecodeString(hexIP)
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			return nil, fmt.Errorf("bad address %q", hexIP)
		}
		// The kernel prints each 32-bit word in host order; the guests
		// kitrun boots are little-endian.
		ip := make(net.IP, len(raw))
		for i := 0; i < len(raw); i += 4 {
			ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
		}
		out = append(out, Port{Proto: proto, Addr: ip.String(), Port: int(port)})
	}
	return out, nil
}

// AddPorts records the guest's listening ports, leaving out skip (the SSH
// port the audit itself opened to look). A port on every address is low,
// one on loopback info.
func (r *Report) AddPorts(ports []Port, skip int) {
	r.NotChecked = nil
	r.Ports = []Port{}
	for _, p := range ports {
		if p.Port == skip && strings.HasPrefix(p.Proto, "tcp") {
			continue
		}
		r.Ports = append(r.Ports, p)
		lvl, where := Low, "every address"
		if ip := net.ParseIP(p.Addr); ip != nil && ip.IsLoopback() {
			lvl, where = Info, "loopback only"
		} else if ip != nil && !ip.IsUnspecified() {
			where = p.Addr
		}
		r.add(Finding{Level: lvl, Kind: "port", Subject: p.Proto + " " + net.JoinHostPort(p.Addr, strconv.Itoa(p.Port)), Detail: "listening in the guest (" + where + ")"})
	}
	r.NotChecked = append(r.NotChecked, "ports of services with net: new (own network namespace)")
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Level > r.Findings[j].Level })
}
