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

// The channel's, power button's, NIC's and seed's modules load before the
// channel opens; the panic device's only once the boot has settled.
func TestCmdlineModules(t *testing.T) {
	h := Hardware{
		Console: "ttyS0", Channel: "/dev/hvc0",
		ChannelModules: []string{"virtio_mmio", "virtio_console"},
		NICModules:     []string{"virtio_mmio", "virtio_net"},
		PanicModules:   []string{"pvpanic_mmio"},
		PowerModules:   []string{"hyperv_keyboard"},
		DiskSeed:       initproto.SeedFwCfg, SeedModules: []string{"qemu_fw_cfg"},
	}
	for _, c := range []struct {
		w    Wiring
		want string
	}{
		{Wiring{}, "quiet console=ttyS0 panic=-1 printk.devkmsg=off kitrun.channel=/dev/hvc0 kitrun.chanmods=hyperv_keyboard,virtio_mmio,virtio_console kitrun.latemods=pvpanic_mmio"},
		{Wiring{Network: true, Disk: true}, "quiet console=ttyS0 panic=-1 printk.devkmsg=off kitrun.channel=/dev/hvc0 kitrun.seed=fwcfg kitrun.chanmods=hyperv_keyboard,virtio_mmio,virtio_console,virtio_net,qemu_fw_cfg kitrun.latemods=pvpanic_mmio"},
		{Wiring{NoChannel: true}, "quiet console=ttyS0 panic=-1 printk.devkmsg=off kitrun.chanmods=hyperv_keyboard kitrun.latemods=pvpanic_mmio"},
	} {
		if got := h.Cmdline("quiet", c.w); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.w, got, c.want)
		}
	}
}
