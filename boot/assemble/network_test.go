package assemble

import (
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/boot/spec"
)

// TestResolveNetwork: the spec's network over the platform's, and DHCP
// exactly where neither gives an address.
func TestResolveNetwork(t *testing.T) {
	static := platform.Platform{Name: "qemu", Network: platform.Network{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3"}}
	cloud := platform.Platform{Name: "cloud"}
	auto := spec.Network{Mode: spec.NetworkAuto}
	for _, tc := range []struct {
		name string
		nw   spec.Network
		p    platform.Platform
		want *initproto.Network
		err  string
	}{
		{"none", spec.Network{Mode: spec.NetworkNone}, cloud, nil, ""},
		{"platform layout", auto, static, &initproto.Network{Mode: initproto.NetworkStatic, Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3"}, ""},
		{"spec address over platform", spec.Network{Mode: spec.NetworkAuto, Address: "10.0.2.20/24"}, static, &initproto.Network{Mode: initproto.NetworkStatic, Address: "10.0.2.20/24", Gateway: "10.0.2.2", DNS: "10.0.2.3"}, ""},
		{"dhcp", auto, cloud, &initproto.Network{Mode: initproto.NetworkDHCP}, ""},
		{"static on a dhcp platform", spec.Network{Mode: spec.NetworkAuto, Address: "192.0.2.5/24", Gateway: "192.0.2.1"}, cloud, &initproto.Network{Mode: initproto.NetworkStatic, Address: "192.0.2.5/24", Gateway: "192.0.2.1"}, ""},
		{"gateway without address on a dhcp platform", spec.Network{Mode: spec.NetworkAuto, Gateway: "192.0.2.1"}, cloud, nil, "the cloud platform has no static network layout, so kitinit asks DHCP"},
		{"gateway outside", spec.Network{Mode: spec.NetworkAuto, Address: "192.0.2.5/24"}, static, nil, "does not contain the gateway 10.0.2.2"},
	} {
		got, err := resolveNetwork(tc.nw, tc.p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}
