package main

import (
	"testing"

	"github.com/kitrun/kitrun/hypervisor/azure/azurefake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestAzureBackendCommands runs `kitrun run`, `bench` and `test` with
// --backend azure against the fakes (a page-blob store and an ARM that
// boots the VM's disk with QEMU, in this test process), then `kitrun cloud
// sweep` removes the image disks they shared. Three boots under TCG.
func TestAzureBackendCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("boots four VMs")
	}
	qemutest.Require(t, "x86_64")
	f := azurefake.Start(t, azurefake.Options{Boot: true})
	f.Env(t)
	testCloudCommands(t, cloudCLI{
		backend: "azure", format: "vhd", fakeOptions: f.BackendOptions(),
		benchMetrics: []string{"boot.api_accepted", "boot.first_output", "boot.all_ready"},
		imagesMade: func(t *testing.T) {
			if blobs, _ := f.Uploads(); blobs != 2 {
				// minimal.yml's vhd once for run and bench; the test case's once.
				t.Errorf("%d uploads, want 2 (one per disk digest)", blobs)
			}
		},
		wouldDelete: "image-disk", resources: f.Resources,
	})
}
