package qemu_test

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestDHCP builds the conformance image for a QEMU platform without a
// static network layout, as a cloud's is, so that kitinit must lease its
// address from slirp's DHCP server; then a published port must reach the
// guest's service through that address.
func TestDHCP(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	hello := filepath.Join(qemutest.RepoRoot(t), "examples", "cmd", "hello")
	spec := qemutest.WriteSpec(t, "dhcp", strings.Replace(hypervisortest.ServiceSpec, "GOPACKAGE", hello, 1))
	img := qemutest.BuildSpec(t, a, spec, func(o *assemble.Options) { o.Platform.Network = platform.Network{} })

	var console qemutest.Buffer
	v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, vm.Options{
		Resources: hypervisor.Resources{Accel: "tcg"},
		Console:   &console,
		Publish:   []hypervisor.PortForward{{HostAddr: "127.0.0.1", GuestPort: 8080}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	})
	if err := v.WaitReady(context.Background(), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	// slirp leases 10.0.2.15 for a day, from its own address, which is
	// also the router.
	const want = "kitinit: network up: eth0 10.0.2.15/24 via 10.0.2.2 (dhcp from 10.0.2.2, lease 24h0m0s)"
	if !strings.Contains(console.String(), want) {
		t.Errorf("the console lacks %q", want)
	}
	// What the lease costs the boot, in guest time (under TCG).
	var loaded, up float64
	for _, m := range v.Timeline() {
		switch m.Stage.String() {
		case "modules-loaded":
			loaded = m.Guest
		case "network-up":
			up = m.Guest
		}
	}
	if up == 0 {
		t.Errorf("no network-up in the timeline %v", v.Timeline())
	}
	t.Logf("modules-loaded to network-up (link up and DHCP): %.3fs", up-loaded)
	addr, err := v.Machine.Endpoint(8080)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "hello from") {
		t.Errorf("guest port 8080 at %s answered %q", addr, line)
	}
	if err := v.Shutdown(context.Background(), 30*time.Second); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
