package aws_test

import (
	"testing"

	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/aws"
	"github.com/kitrun/kitrun/hypervisor/aws/awsfake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
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
	hypervisortest.RunCloudEndToEnd(t, hypervisortest.CloudEndToEnd{
		Backend: backend(t, f), Name: "aws", Format: aws.Format,
		Open:     func() (hypervisor.Backend, error) { return backend(t, f), nil },
		IDPrefix: "i-", Platform: "EC2", Own: "the instance's own",
		PowerOff:  "StopInstances, then terminated",
		Transient: func() []string { return transient(f) }, Resources: f.Resources,
		MadeOnce: func(t *testing.T) {
			if n := f.Calls("ImportSnapshot"); n != 1 || f.Puts() != 1 {
				t.Errorf("the image was uploaded %d times (%d imports) for four machines, want once", f.Puts(), n)
			}
		},
	})
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
	hypervisortest.RunCloudSSH(t, backend(t, f), aws.Format)
}
