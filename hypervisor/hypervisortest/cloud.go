package hypervisortest

// The tests every cloud backend (aws, gcp, azure) runs against its fake:
// what a machine's whole life, a control-plane test and the boundary of
// its SDK look like is the same on every cloud; what differs (the fake,
// its resources' names, the platform's words) comes in the arguments.

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// CloudBackend is a cloud backend as its tests use it: a
// hypervisor.Backend that also sweeps.
type CloudBackend interface {
	hypervisor.Backend
	cloud.Sweeper
}

// NewCloudBackend makes a backend with newBackend from its fake's options
// (BackendOptions) and extra ones ("key=value", which win).
func NewCloudBackend[B any](t testing.TB, newBackend func(hypervisor.Options) (B, error), fakeOptions map[string]string, extra ...string) B {
	t.Helper()
	o := hypervisor.Options{}
	for k, v := range fakeOptions {
		o[k] = v
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		o[k] = v
	}
	b, err := newBackend(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TryStart starts a machine of img in format on b, publishing ports at
// the loopback address, and ties it to t: forced off at cleanup, its
// events drained. A failed start is returned, not fatal.
func TryStart(t *testing.T, b hypervisor.Backend, img *image.Image, format string, publish ...int) (hypervisor.Machine, error) {
	t.Helper()
	spec := hypervisor.Spec{Image: img, Format: format}
	for _, p := range publish {
		spec.Publish = append(spec.Publish, hypervisor.PortForward{HostAddr: "127.0.0.1", GuestPort: p})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := b.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { m.ForceOff(context.Background()) })
	go func() {
		for range m.Events() {
		}
	}()
	return m, nil
}

// Start is TryStart, fatal when the start fails.
func Start(t *testing.T, b hypervisor.Backend, img *image.Image, format string, publish ...int) hypervisor.Machine {
	t.Helper()
	m, err := TryStart(t, b, img, format, publish...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WaitGone fails t unless m is gone within the given time.
func WaitGone(t *testing.T, m hypervisor.Machine, within time.Duration) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(within):
		t.Fatalf("machine %s not gone within %s", m.Info().ID, within)
	}
}

// SweepRun sweeps everything this test process's run made, whatever its
// age, and fails t unless the fake then holds nothing (resources lists
// what it holds).
func SweepRun(t *testing.T, b cloud.Sweeper, resources func() []string) {
	t.Helper()
	rep, err := b.Sweep(context.Background(), cloud.SweepOptions{Run: cloud.RunID(), OlderThan: time.Nanosecond})
	if err != nil || rep.Err() != nil {
		t.Fatalf("sweep: %v %v", err, rep.Err())
	}
	if r := resources(); len(r) != 0 {
		t.Errorf("left after the sweep: %v", r)
	}
}

// CloudEndToEnd is a cloud backend's whole path against its fake that
// boots with QEMU, for RunCloudEndToEnd.
type CloudEndToEnd struct {
	Backend CloudBackend
	// Name is the backend's name, as the machine's Info says it.
	Name string
	// Open makes another backend on the same fake (Config.Open).
	Open   func() (hypervisor.Backend, error)
	Format string
	// IDPrefix starts every machine ID ("i-" on EC2).
	IDPrefix string
	// Platform names the platform in the DHCP failure ("as it does on
	// EC2"); "" says nothing more.
	Platform string
	// Own names the machine's own address in the endpoint failure ("the
	// instance's own", "the VM's own").
	Own string
	// PowerOff names the platform's calls from the power button to gone,
	// in the log.
	PowerOff string
	// Transient lists what the fake holds besides images kept for reuse;
	// Resources lists all it holds.
	Transient, Resources func() []string
	// MadeOnce fails t unless the image was made once for the four
	// machines.
	MadeOnce func(t *testing.T)
}

// RunCloudEndToEnd boots ServiceSpec through the backend's whole path:
// kitinit's events in order, DHCP, the published port at the machine's
// own (loopback) address, the power button and the teardown; then the
// boundary's conformance test runs three more machines on the same image,
// which was made once, and a sweep removes it.
func RunCloudEndToEnd(t *testing.T, c CloudEndToEnd) {
	t.Helper()
	b := c.Backend
	img := ServiceImage(t, b, c.Format)

	v, console := Boot(t, b, img, vm.Options{Format: c.Format,
		Publish: []hypervisor.PortForward{{HostAddr: "127.0.0.1", GuestPort: 8080}}})
	if err := v.WaitReady(context.Background(), 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	info := v.Machine.Info()
	if info.Backend != c.Name || !strings.HasPrefix(info.ID, c.IDPrefix) || info.Format != c.Format {
		t.Errorf("info %+v", info)
	}
	var got []string
	for _, m := range v.Timeline() {
		got = append(got, m.Stage.String())
		t.Logf("%-22s host %6.2fs", m.Stage, m.Host.Seconds())
	}
	AssertOrder(t, got, []string{hypervisor.EvAPIAccepted, hypervisor.EvRunning, vm.StageFirmware, "init-start", "service-ready hello", "all-ready"})
	if !strings.Contains(console.String(), "dhcp from") {
		where := ""
		if c.Platform != "" {
			where = ", as it does on " + c.Platform
		}
		t.Error("the guest's network did not come from DHCP" + where)
	}
	addr, err := v.Machine.Endpoint(8080)
	if err != nil {
		t.Fatal(err)
	}
	if !cloudfake.IsPublicAddr(addr) {
		t.Errorf("endpoint %s: want %s (loopback) address", addr, c.Own)
	}
	if g := Greet(t, addr); !strings.HasPrefix(g, "hello from") {
		t.Errorf("port 8080 at %s answered %q", addr, g)
	}
	if ok, err := b.Alive(context.Background(), info.ID); !ok || err != nil {
		t.Errorf("Alive = %v, %v", ok, err)
	}
	start := time.Now()
	if err := v.Shutdown(context.Background(), time.Minute); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("power button to gone (%s): %s", c.PowerOff, time.Since(start).Round(time.Millisecond))
	if err := v.Machine.Err(); err != nil {
		t.Errorf("Err after the power button: %v", err)
	}
	if !slices.Contains(got, "all-ready") || !slices.Contains(Stages(v), "shutdown-done") {
		t.Errorf("stages %v", Stages(v))
	}
	if r := c.Transient(); len(r) != 0 {
		t.Errorf("left after the machine: %v", r)
	}
	if ok, _ := b.Alive(context.Background(), info.ID); ok {
		t.Error("Alive after the machine is gone")
	}

	// The conformance test of the boundary: three more machines (ready,
	// endpoint and power button; the stop ladder; destroy by ID from
	// another backend), all from the image made above.
	t.Run("Conformance", func(t *testing.T) {
		Run(t, Config{
			Backend: b, Open: c.Open,
			Arch: img.Arch, Image: img, Format: c.Format, RemoteEndpoints: true, BootTimeout: 4 * time.Minute,
		})
	})
	c.MadeOnce(t)
	if r := c.Transient(); len(r) != 0 {
		t.Errorf("left after the machines: %v", r)
	}
	SweepRun(t, b, c.Resources)
}

// RunCloudSSH builds SSHSpec in format and runs RunSSH on b: the seed
// reaches kitinit through the platform's instance metadata.
func RunCloudSSH(t *testing.T, b hypervisor.Backend, format string) {
	t.Helper()
	img := BuildImage(t, b, "sshguest", SSHSpec, format)
	RunSSH(t, b, img, format, 4*time.Minute)
}

// SDKBoundaries is where a cloud backend's SDK may be linked, for
// CheckSDKBoundaries.
type SDKBoundaries struct {
	Backend string // "aws"
	// SDK says whether a package is the backend's SDK (or the backend).
	SDK func(pkg string) bool
	// Fake says whether a package is one of the backend's fakes.
	Fake func(pkg string) bool
	// Client says whether a package is the client that shows the
	// backend is in the kitrun binary; ClientName names it.
	Client     func(pkg string) bool
	ClientName string
	// Unwanted, if set, says why the kitrun binary must not link a
	// package ("" when it may).
	Unwanted func(pkg string) string
}

// CheckSDKBoundaries: the SDK reaches kitrun's command only, never the
// packages testcases/vmtest users import (nor the shared cloud
// plumbing), and the fakes reach no binary.
func CheckSDKBoundaries(t *testing.T, s SDKBoundaries) {
	t.Helper()
	deps := func(pkgs ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
		if err != nil {
			t.Fatalf("go list -deps %v: %v", pkgs, err)
		}
		return strings.Fields(string(out))
	}
	for _, p := range deps("github.com/kitrun/kitrun/testcases/vmtest", "github.com/kitrun/kitrun/hypervisor/vm",
		"github.com/kitrun/kitrun/hypervisor/cloud", "github.com/kitrun/kitrun/hypervisor/qemu") {
		if s.SDK(p) || strings.HasSuffix(p, "hypervisor/"+s.Backend) {
			t.Errorf("%s is linked into what vmtest users import", p)
		}
	}
	client := false
	for _, p := range deps("github.com/kitrun/kitrun/cmd/kitrun") {
		if s.Fake(p) {
			t.Errorf("the kitrun binary links the fake %s", p)
		}
		if s.Unwanted != nil {
			if why := s.Unwanted(p); why != "" {
				t.Errorf("the kitrun binary links %s (%s)", p, why)
			}
		}
		client = client || s.Client(p)
	}
	if !client {
		t.Errorf("the kitrun binary lacks %s: is the %s backend registered?", s.ClientName, s.Backend)
	}
}
