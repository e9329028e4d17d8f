package azure_test

import (
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/azure"
	"github.com/kitrun/kitrun/hypervisor/azure/azurefake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
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
	hypervisortest.RunCloudEndToEnd(t, hypervisortest.CloudEndToEnd{
		Backend: backend(t, f), Name: "azure", Format: azure.Format,
		Open:     func() (hypervisor.Backend, error) { return backend(t, f), nil },
		IDPrefix: azure.VMPrefix, Own: "the VM's own public",
		PowerOff:  "PowerOff, then deleted",
		Transient: func() []string { return transient(f) }, Resources: f.Resources,
		MadeOnce: func(t *testing.T) {
			if blobs, _ := f.Uploads(); blobs != 1 || f.Calls("PUT disks") < 2 {
				t.Errorf("the image was uploaded %d times for four machines, want once", blobs)
			}
		},
	})
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
	f.Env(t)
	hypervisortest.RunCloudSSH(t, backend(t, f), azure.Format)
}
