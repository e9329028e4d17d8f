package aws_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/aws"
	"github.com/kitrun/kitrun/hypervisor/aws/awsfake"
	"github.com/kitrun/kitrun/hypervisor/cloud"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestBootEndToEnd boots an image through the whole AWS path against the
// fakes: upload to S3, import, register, run (QEMU under the fake EC2),
// kitinit's events read from console snapshots, the published port at the
// instance's address, the power button (StopInstances) and the teardown;
// then the boundary's conformance test runs three more machines on the
// same AMI, and a sweep removes the image.
func TestBootEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots four VMs under QEMU")
	}
	f := awsfake.Start(t, awsfake.Options{Boot: true})
	f.Env(t)
	b := backend(t, f)
	img := hypervisortest.ServiceImage(t, b, aws.Format)

	v, console := hypervisortest.Boot(t, b, img, vm.Options{Format: aws.Format,
		Publish: []hypervisor.PortForward{{HostAddr: "127.0.0.1", GuestPort: 8080}}})
	if err := v.WaitReady(context.Background(), 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	info := v.Machine.Info()
	if info.Backend != "aws" || !strings.HasPrefix(info.ID, "i-") || info.Format != aws.Format {
		t.Errorf("info %+v", info)
	}
	var got []string
	for _, m := range v.Timeline() {
		got = append(got, m.Stage.String())
		t.Logf("%-22s host %6.2fs", m.Stage, m.Host.Seconds())
	}
	hypervisortest.AssertOrder(t, got, []string{hypervisor.EvAPIAccepted, hypervisor.EvRunning, vm.StageFirmware, "init-start", "service-ready hello", "all-ready"})
	if !strings.Contains(console.String(), "dhcp from") {
		t.Error("the guest's network did not come from DHCP, as it does on EC2")
	}
	addr, err := v.Machine.Endpoint(8080)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(addr); host == "127.0.0.1" || !strings.HasPrefix(host, "127.0.0.") {
		t.Errorf("endpoint %s: want the instance's own (loopback) address", addr)
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
	t.Logf("power button to gone (StopInstances, then terminated): %s", time.Since(start).Round(time.Millisecond))
	if err := v.Machine.Err(); err != nil {
		t.Errorf("Err after the power button: %v", err)
	}
	if !slices.Contains(got, "all-ready") || !slices.Contains(hypervisortest.Stages(v), "shutdown-done") {
		t.Errorf("stages %v", hypervisortest.Stages(v))
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left after the machine: %v", r)
	}
	if ok, _ := b.Alive(context.Background(), info.ID); ok {
		t.Error("Alive after the machine is gone")
	}

	// The conformance test of the boundary: three more machines (ready,
	// endpoint and power button; the stop ladder; destroy by ID from
	// another backend), all from the AMI made above.
	t.Run("Conformance", func(t *testing.T) {
		hypervisortest.Run(t, hypervisortest.Config{
			Backend: b, Open: func() (hypervisor.Backend, error) { return backend(t, f), nil },
			Arch: img.Arch, Image: img, Format: aws.Format, RemoteEndpoints: true, BootTimeout: 4 * time.Minute,
		})
	})
	if n := f.Calls("ImportSnapshot"); n != 1 || f.Puts() != 1 {
		t.Errorf("the image was uploaded %d times (%d imports) for four machines, want once", f.Puts(), n)
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

// TestSSHEndToEnd boots an image whose boot needs per-boot files (SSH
// keys): the seed travels as the instance's user data, kitinit reads it
// over IMDSv2 from the fake's metadata service, and vm's SSH client pins
// the host key it delivered.
func TestSSHEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under QEMU")
	}
	f := awsfake.Start(t, awsfake.Options{Boot: true})
	f.Env(t)
	b := backend(t, f)
	img := hypervisortest.BuildImage(t, b, "sshguest", hypervisortest.SSHSpec, aws.Format)
	hypervisortest.RunSSH(t, b, img, aws.Format, 4*time.Minute)
}
