package spec

import "net/netip"

var networkKeys = keySet{in: "network", valid: []string{"mode", "address", "gateway", "dns"}}

func (p *parser) network(top *fields) Network {
	nw := Network{Mode: NetworkNone}
	f, ok := top.mapping("network", networkKeys)
	if !ok {
		return nw
	}
	nw.Pos = p.at(f.node)
	if f.has("mode") {
		mode, ok := f.enum("mode", []string{NetworkNone, NetworkAuto, "user"})
		if !ok {
			return nw
		}
		if mode == "user" {
			mode = NetworkAuto // its name before platforms
		}
		nw.Mode = mode
	}
	if nw.Mode == NetworkNone {
		for _, k := range []string{"address", "gateway", "dns"} {
			if f.has(k) {
				p.errorf(f.keyPos(k), "network.%s needs mode: auto; with mode none the guest has only loopback", k)
			}
		}
		return nw
	}
	prefix, prefixOK := netip.Prefix{}, false
	if f.has("address") {
		if prefix, prefixOK = p.prefix(f); prefixOK {
			nw.Address = prefix.String()
		}
	}
	if f.has("dns") {
		if dns, ok := p.addr(f, "dns", "192.0.2.53"); ok {
			nw.DNS = dns.String()
		}
	}
	if f.has("gateway") {
		gw, ok := p.addr(f, "gateway", "192.0.2.1")
		if !ok {
			return nw
		}
		nw.Gateway = gw.String()
		// The gateway must be reachable on the link, i.e. inside the
		// prefix. (Against the platform's defaults this is checked when
		// the image is built for a platform.)
		if prefixOK && !prefix.Contains(gw) {
			f.errorf("gateway", "%s is outside %s (network.address); use an address inside that prefix", gw, prefix.Masked())
		}
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
		f.errorf("address", "%q is not an address with prefix length (CIDR); use e.g. 192.0.2.15/24", n.Value)
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
