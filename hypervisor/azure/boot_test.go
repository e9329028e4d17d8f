package azure_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/azure"
	"github.com/kitrun/kitrun/hypervisor/azure/azurefake"
	"github.com/kitrun/kitrun/hypervisor/cloud"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestBootEndToEnd boots an image through the whole Azure path against
// the fakes: page blob upload, managed disk import, the VM's disk copy,
// public IP, security group, NIC and VM (QEMU under the fake ARM),
// kitinit's events read from boot diagnostics snapshots, the published
// port at the public IP, the power button (PowerOff) and the teardown;
// then the boundary's conformance test runs three more machines on the
// same image disk, and a sweep removes it.
func TestBootEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots four VMs under QEMU")
	}
	f := azurefake.Start(t, azurefake.Options{Boot: true})
	f.Env(t)
	b := backend(t, f)
	img := hypervisortest.ServiceImage(t, b, azure.Format)

	v, console := hypervisortest.Boot(t, b, img, vm.Options{Format: azure.Format,
		Publish: []hypervisor.PortForward{{HostAddr: "127.0.0.1", GuestPort: 8080}}})
	if err := v.WaitReady(context.Background(), 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	info := v.Machine.Info()
	if info.Backend != "azure" || !strings.HasPrefix(info.ID, azure.VMPrefix) || info.Format != azure.Format {
		t.Errorf("info %+v", info)
	}
	var got []string
	for _, m := range v.Timeline() {
		got = append(got, m.Stage.String())
		t.Logf("%-22s host %6.2fs", m.Stage, m.Host.Seconds())
	}
	hypervisortest.AssertOrder(t, got, []string{hypervisor.EvAPIAccepted, hypervisor.EvRunning, vm.StageFirmware, "init-start", "service-ready hello", "all-ready"})
	if !strings.Contains(console.String(), "dhcp from") {
		t.Error("the guest's network did not come from DHCP")
	}
	addr, err := v.Machine.Endpoint(8080)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(addr); host == "127.0.0.1" || !strings.HasPrefix(host, "127.0.0.") {
		t.Errorf("endpoint %s: want the VM's own (loopback) public address", addr)
	}
	if g := hypervisortest.Greet(t, addr); !strings.HasPrefix(g, "hello from") {
		t.Errorf("port 8080 at %s answered %q", addr, g)
	}
	if ok, err := b.Alive(context.Background(), info.ID); !ok || err != nil {
		t.Errorf("Alive = %v, %v", ok, err)
	}
	start := time.Now()
	if err := v.Shutdown(context.Background(), time.Minute); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("power button to gone (PowerOff, then deleted): %s", time.Since(start).Round(time.Millisecond))
	if err := v.Machine.Err(); err != nil {
		t.Errorf("Err after the power button: %v", err)
	}
	if !slices.Contains(hypervisortest.Stages(v), "shutdown-done") {
		t.Errorf("stages %v", hypervisortest.Stages(v))
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left after the machine: %v", r)
	}
	if ok, _ := b.Alive(context.Background(), info.ID); ok {
		t.Error("Alive after the machine is gone")
	}

	t.Run("Conformance", func(t *testing.T) {
		hypervisortest.Run(t, hypervisortest.Config{
			Backend: b, Open: func() (hypervisor.Backend, error) { return backend(t, f), nil },
			Arch: img.Arch, Image: img, Format: azure.Format, RemoteEndpoints: true, BootTimeout: 4 * time.Minute,
		})
	})
	if blobs, _ := f.Uploads(); blobs != 1 || f.Calls("PUT disks") < 2 {
		t.Errorf("the image was uploaded %d times for four machines, want once", blobs)
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left after the machines: %v", r)
	}
	rep, err := b.Sweep(context.Background(), cloud.SweepOptions{Run: cloud.RunID(), OlderThan: time.Nanosecond})
	if err != nil || rep.Err() != nil {
		t.Fatalf("sweep: %v %v", err, rep.Err())
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left after the sweep: %v", r)
	}
}

// transient is what exists besides image disks (kept for reuse).
func transient(f *azurefake.Fake) []string {
	var out []string
	for _, r := range f.Resources() {
		if !strings.HasPrefix(r, "Microsoft.Compute/disks/"+azure.ImageDiskPrefix) {
			out = append(out, r)
		}
	}
	return out
}

// TestSSHEndToEnd boots an image whose boot needs per-boot files (SSH
// keys): the seed travels as the VM's userData, kitinit reads it from the
// fake's IMDS (Metadata: true), and vm's SSH client pins the host key it
// delivered.
func TestSSHEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under QEMU")
	}
	f := azurefake.Start(t, azurefake.Options{Boot: true})
	b := backend(t, f)
	img := hypervisortest.BuildImage(t, b, "sshguest", hypervisortest.SSHSpec, azure.Format)
	hypervisortest.RunSSH(t, b, img, azure.Format, 4*time.Minute)
}
