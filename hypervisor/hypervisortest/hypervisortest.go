// Package hypervisortest is the conformance test of the hypervisor
// boundary: what every backend must do for hypervisor/vm, and everything
// above it, to work unchanged. The QEMU backend runs it on real VMs and the
// fake backend in-process; a new backend (Hyper-V, a cloud) runs it against
// its platform or a faithful emulator of it. It also holds the tests every
// cloud backend runs the same way against its fake (cloud.go): a machine's
// whole life, the control plane's helpers and the boundary of its SDK.
package hypervisortest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// ServiceSpec is the image every conformance boot uses: one service that
// greets each TCP connection on port 8080 with "hello from <hostname>",
// with networking so that the port can be published. Build it with the
// backend's platform; GoPackage is substituted by the caller's path to
// examples/cmd/hello.
const ServiceSpec = `version: 1
name: conformance
kernel:
  package: linux-image-cloud
  cmdline: quiet
network:
  mode: auto
services:
  - name: hello
    go: GOPACKAGE
    args: ["-addr", ":8080"]
    ready:
      tcp: 8080
      timeout: 60s
`

// Config describes the backend under test.
type Config struct {
	// Backend is the backend under test; Open reopens it by name (as
	// another kitrun process would), for Destroy and Alive by ID.
	Backend hypervisor.Backend
	Open    func() (hypervisor.Backend, error)
	Arch    arch.Arch
	// Image is ServiceSpec built for the backend's platform.
	Image *image.Image
	// Resources for every boot (an accelerator, say).
	Resources hypervisor.Resources
	// Format is the image format every boot uses ("": direct kernel
	// boot); Image must have been built with it.
	Format string
	// BootTimeout bounds each boot to all-ready.
	BootTimeout time.Duration
	// RemoteEndpoints: published ports are reached at the machine's own
	// address (a cloud instance's), not on the host's loopback.
	RemoteEndpoints bool
}

// Run runs the conformance test.
func Run(t *testing.T, c Config) {
	if c.BootTimeout == 0 {
		c.BootTimeout = 2 * time.Minute
	}
	t.Run("Platform", func(t *testing.T) { testPlatform(t, c) })
	t.Run("BadSpecs", func(t *testing.T) { testBadSpecs(t, c) })
	t.Run("ReadyEndpointMemoryPowerButton", func(t *testing.T) { testReady(t, c) })
	t.Run("ShutdownLadder", func(t *testing.T) { testShutdown(t, c) })
	t.Run("DestroyByIDFromAnotherInstance", func(t *testing.T) { testDestroy(t, c) })
}

func boot(t *testing.T, c Config, publish ...int) (*vm.VM, *buffer) {
	t.Helper()
	var console buffer
	opts := vm.Options{Resources: c.Resources, Format: c.Format, Console: &console}
	for _, p := range publish {
		opts.Publish = append(opts.Publish, hypervisor.PortForward{HostAddr: "127.0.0.1", GuestPort: p})
	}
	v, err := vm.Boot(context.Background(), c.Backend, c.Image, opts)
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	})
	if err := v.WaitReady(context.Background(), c.BootTimeout); err != nil {
		t.Fatalf("boot: %v", err)
	}
	return v, &console
}

func testPlatform(t *testing.T, c Config) {
	p, err := c.Backend.Platform(c.Arch)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != c.Backend.Name() || p.Arch.Name != c.Arch.Name {
		t.Errorf("platform %s/%s, want %s/%s", p.Name, p.Arch.Name, c.Backend.Name(), c.Arch.Name)
	}
	name, hw, err := p.Machine("")
	if err != nil || name != p.DefaultMachine || hw.Console == "" {
		t.Errorf("default machine %q %+v: %v", name, hw, err)
	}
	if _, _, err := p.Machine("no-such-machine"); err == nil || !strings.Contains(err.Error(), p.DefaultMachine) {
		t.Errorf("an unknown machine must be an error naming the valid ones: %v", err)
	}
	if err := c.Backend.Verify(context.Background(), c.Arch); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if v, err := c.Backend.Version(context.Background(), c.Arch); err != nil || v == "" {
		t.Errorf("Version = %q, %v", v, err)
	}
}

func testBadSpecs(t *testing.T, c Config) {
	ctx := context.Background()
	res := c.Resources
	res.Machine = "no-such-machine"
	if m, err := c.Backend.Start(ctx, hypervisor.Spec{Image: c.Image, Resources: res, Format: c.Format}); err == nil {
		m.ForceOff(ctx)
		t.Error("a machine type the platform lacks must be refused")
	}
	if m, err := c.Backend.Start(ctx, hypervisor.Spec{Image: c.Image, Resources: c.Resources, Format: "no-such-format"}); err == nil {
		m.ForceOff(ctx)
		t.Error("an unknown format must be refused")
	}
	if m, err := c.Backend.Start(ctx, hypervisor.Spec{Resources: c.Resources, Format: c.Format}); err == nil {
		m.ForceOff(ctx)
		t.Error("a spec without an image must be refused")
	}
}

func testReady(t *testing.T, c Config) {
	v, console := boot(t, c, 8080)
	m := v.Machine
	info := m.Info()
	if info.Backend != c.Backend.Name() || info.ID == "" || info.Started.IsZero() || info.Arch != c.Arch.Name || info.Accel == "" || info.Accel == "auto" {
		t.Errorf("info = %+v", info)
	}
	if ok, err := c.Backend.Alive(context.Background(), info.ID); err != nil || !ok {
		t.Errorf("Alive(%s) = %v, %v while it runs", info.ID, ok, err)
	}
	// The published port reaches the guest's service.
	addr, err := m.Endpoint(8080)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" && !c.RemoteEndpoints {
		t.Errorf("endpoint %s: published ports bind the loopback address by default", addr)
	}
	if got := greet(t, addr); !strings.HasPrefix(got, "hello from") {
		t.Errorf("guest port 8080 at %s answered %q", addr, got)
	}
	if _, err := m.Endpoint(9); err == nil {
		t.Error("Endpoint of a port that is not published must fail")
	}
	// The channel carries commands both ways, where the platform has one.
	if m.Channel() != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		mem, err := v.Memory(ctx)
		cancel()
		if err != nil || mem["mem_total"] <= 0 {
			t.Errorf("memory over the channel: %v %v", mem, err)
		}
	}
	// The console is read beside the channel: on a fast backend all-ready
	// may be handled before the console's first line.
	for until := time.Now().Add(10 * time.Second); (len(v.ConsoleTail(5)) == 0 || console.String() == "") && time.Now().Before(until); {
		time.Sleep(10 * time.Millisecond)
	}
	if len(v.ConsoleTail(5)) == 0 || console.String() == "" {
		t.Error("the console brought nothing within 10s of all-ready")
	}
	// The power button powers a kitinit guest off cleanly. kitinit loads
	// the button's driver once the boot has settled, and a press before
	// that is lost, as on real hardware: press again, as a person would.
	deadline := time.After(60 * time.Second)
	for pressed := false; !pressed; {
		if err := m.PowerButton(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-v.Exited():
			pressed = true
		case <-time.After(3 * time.Second):
		case <-deadline:
			t.Fatal("the guest did not power off within 60s of pressing the power button")
		}
	}
	if err := m.Err(); err != nil {
		t.Errorf("a guest that powered itself off: Err = %v", err)
	}
	assertGone(t, c, info.ID, m)
	if !hasStage(v, "shutdown-done") {
		t.Errorf("no shutdown-done in %v", stages(v))
	}
}

func testShutdown(t *testing.T, c Config) {
	v, _ := boot(t, c)
	id := v.Machine.Info().ID
	if err := v.Shutdown(context.Background(), 30*time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := v.Machine.Err(); err != nil {
		t.Errorf("Err after a clean shutdown: %v", err)
	}
	for _, s := range []string{"all-ready", "shutdown", "shutdown-done"} {
		if !hasStage(v, s) {
			t.Errorf("no %s in %v", s, stages(v))
		}
	}
	assertGone(t, c, id, v.Machine)
	if err := v.Shutdown(context.Background(), time.Second); err != nil {
		t.Errorf("Shutdown of a machine that is gone must be a no-op: %v", err)
	}
}

func testDestroy(t *testing.T, c Config) {
	v, _ := boot(t, c)
	id := v.Machine.Info().ID
	other, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ok, err := other.Alive(ctx, id); err != nil || !ok {
		t.Fatalf("another instance: Alive(%s) = %v, %v", id, ok, err)
	}
	if err := other.Destroy(ctx, id); err != nil {
		t.Fatalf("Destroy(%s): %v", id, err)
	}
	select {
	case <-v.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("the machine still runs 15s after Destroy")
	}
	if v.Machine.Err() == nil {
		t.Error("a destroyed machine must not look powered off cleanly")
	}
	assertGone(t, c, id, v.Machine)
	if err := other.Destroy(ctx, id); err != nil {
		t.Errorf("Destroy of a machine that is gone must be a no-op: %v", err)
	}
	if _, err := other.Alive(ctx, "not an id"); err == nil {
		// Backends may accept any string, but must not claim it runs.
		if ok, _ := other.Alive(ctx, "not an id"); ok {
			t.Error(`Alive("not an id") = true`)
		}
	}
}

func assertGone(t *testing.T, c Config, id string, m hypervisor.Machine) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed")
	}
	if ok, err := c.Backend.Alive(context.Background(), id); err != nil || ok {
		t.Errorf("Alive(%s) = %v, %v after the machine is gone", id, ok, err)
	}
	if _, ok := <-m.Events(); ok {
		// Drained by vm; a value here means the backend sent after Done.
		t.Error("Events not closed after Done")
	}
	if err := m.PowerButton(context.Background()); err == nil {
		t.Error("PowerButton on a machine that is gone must fail")
	} else if !errors.Is(err, hypervisor.ErrExited) {
		t.Logf("PowerButton after exit: %v", err)
	}
	if err := m.ForceOff(context.Background()); err != nil {
		t.Errorf("ForceOff on a machine that is gone must be a no-op: %v", err)
	}
}

func greet(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func stages(v *vm.VM) []string {
	var out []string
	for _, m := range v.Timeline() {
		out = append(out, m.Stage.String())
	}
	return out
}

func hasStage(v *vm.VM, s string) bool {
	for _, x := range stages(v) {
		if x == s {
			return true
		}
	}
	return false
}

// buffer is a goroutine-safe console sink.
type buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
