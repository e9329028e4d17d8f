package gcp_test

import (
	"testing"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/gcp"
	"github.com/kitrun/kitrun/hypervisor/gcp/gcpfake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
)

// TestBootEndToEnd boots an image through the whole GCP path against the
// fakes: upload to Cloud Storage, images.insert, instances.insert (QEMU
// under the fake Compute Engine), kitinit's events read from the serial
// port stream, the published port at the instance's address through its
// firewall rule, the power button (instances.stop) and the teardown; then
// the boundary's conformance test runs three more machines on the same
// image, and a sweep removes the image.
func TestBootEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots four VMs under QEMU")
	}
	f := gcpfake.Start(t, gcpfake.Options{Boot: true})
	hypervisortest.RunCloudEndToEnd(t, hypervisortest.CloudEndToEnd{
		Backend: backend(t, f), Name: "gcp", Format: gcp.Format,
		Open:     func() (hypervisor.Backend, error) { return backend(t, f), nil },
		IDPrefix: "kitrun-", Platform: "Compute Engine", Own: "the instance's own",
		PowerOff:  "instances.stop, then deleted",
		Transient: f.Transient, Resources: f.Resources,
		MadeOnce: func(t *testing.T) {
			if n := f.Calls("images.insert"); n != 1 {
				t.Errorf("the image was made %d times for four machines, want once", n)
			}
		},
	})
}

// TestSSHEndToEnd boots an image whose boot needs per-boot files (SSH
// keys): the seed travels as the instance metadata item kitrun-seed,
// kitinit reads it from the fake's metadata server (Metadata-Flavor:
// Google), and vm's SSH client pins the host key it delivered.
func TestSSHEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under QEMU")
	}
	f := gcpfake.Start(t, gcpfake.Options{Boot: true})
	hypervisortest.RunCloudSSH(t, backend(t, f), gcp.Format)
}
