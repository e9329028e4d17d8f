package spec

import "net/netip"

var networkKeys = keySet{in: "network", valid: []string{"mode", "address", "gateway", "dns"}}

// QEMU user-mode networking's fixed layout.
const (
	defaultAddress = "10.0.2.15/24"
	defaultGateway = "10.0.2.2"
	defaultDNS     = "10.0.2.3"
)

func (p *parser) network(top *fields) Network {
	nw := Network{Mode: "none"}
	f, ok := top.mapping("network", networkKeys)
	if !ok {
		return nw
	}
	nw.Pos = p.at(f.node)
	if f.has("mode") {
		mode, ok := f.enum("mode", []string{"none", "user"})
		if !ok {
			return nw
		}
		nw.Mode = mode
	}
	if nw.Mode == "none" {
		for _, k := range []string{"address", "gateway", "dns"} {
			if f.has(k) {
				p.errorf(f.keyPos(k), "network.%s needs mode: user; with mode none the guest has only loopback", k)
			}
		}
		return nw
	}

	nw.Address, nw.Gateway, nw.DNS = defaultAddress, defaultGateway, defaultDNS
	prefix := netip.MustParsePrefix(defaultAddress)
	prefixOK := true
	if f.has("address") {
		if prefix, prefixOK = p.prefix(f); prefixOK {
			nw.Address = prefix.String()
		}
	}
	if f.has("dns") {
		if dns, ok := p.addr(f, "dns", defaultDNS); ok {
			nw.DNS = dns.String()
		}
	}

	// The gateway must be reachable on the link, i.e. inside the prefix.
	gw := netip.MustParseAddr(defaultGateway)
	if f.has("gateway") {
		var ok bool
		if gw, ok = p.addr(f, "gateway", defaultGateway); !ok {
			return nw
		}
		nw.Gateway = gw.String()
	}
	if !prefixOK || prefix.Contains(gw) {
		return nw
	}
	if f.has("gateway") {
		f.errorf("gateway", "%s is outside %s (network.address); use an address inside that prefix", gw, prefix.Masked())
	} else {
		f.errorf("address", "%s does not contain the default gateway %s; set network.gateway to an address inside %s", nw.Address, gw, prefix.Masked())
	}
	return nw
}

func (p *parser) prefix(f *fields) (netip.Prefix, bool) {
	n, ok := f.scalar("address", "an address with prefix length")
	if !ok {
		return netip.Prefix{}, false
	}
	pfx, err := netip.ParsePrefix(n.Value)
	if err != nil {
		f.errorf("address", "%q is not an address with prefix length (CIDR); use e.g. %s", n.Value, defaultAddress)
		return netip.Prefix{}, false
	}
	return pfx, true
}

// addr parses the IP address at key; example is a valid one for messages.
func (p *parser) addr(f *fields, key, example string) (netip.Addr, bool) {
	n, ok := f.scalar(key, "an IP address")
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(n.Value)
	if err != nil {
		f.errorf(key, "%q is not an IP address; use e.g. %s", n.Value, example)
		return netip.Addr{}, false
	}
	return a, true
}
