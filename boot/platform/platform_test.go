package platform

import (
	"testing"

	"github.com/kitrun/kitrun/boot/initproto"
)

// A disk image names its seed source on its command line; a source
// reached over the network is named only when the image has one (without
// it kitinit would wait for a seed it cannot fetch).
func TestCmdlineSeed(t *testing.T) {
	for _, c := range []struct {
		seed    string
		network bool
		want    string
	}{
		{initproto.SeedFwCfg, false, initproto.SeedFwCfg},
		{initproto.SeedAWS, true, initproto.SeedAWS},
		{initproto.SeedAWS, false, ""},
		{initproto.SeedGCE, true, initproto.SeedGCE},
		{"", true, ""},
	} {
		h := Hardware{Console: "ttyS0", DiskSeed: c.seed}
		got := initproto.CmdlineSeed(h.Cmdline("quiet", Wiring{Disk: true, Network: c.network}))
		if got != c.want {
			t.Errorf("seed %q, network %v: command line names %q, want %q", c.seed, c.network, got, c.want)
		}
		if got := initproto.CmdlineSeed(h.Cmdline("quiet", Wiring{Network: c.network})); got != "" {
			t.Errorf("a direct kernel boot names seed %q", got)
		}
	}
}
