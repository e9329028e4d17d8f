package hypervisortest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// SSHSpec is an image whose boot needs per-boot files: `ssh: true` (which
// turns the network on), so its server's host key and the client's key
// arrive with each boot (hypervisor.Spec.Seed), never in the image.
const SSHSpec = `version: 1
name: sshguest
kernel:
  package: linux-image-cloud
  cmdline: quiet
ssh: true
`

// RunSSH boots img (SSHSpec built for the backend's platform) with SSH,
// runs a command over it and checks that the guest's host key is the one
// this boot delivered: vm pins it (ssh.FixedHostKey), so a guest holding
// any other key (an image's, a previous boot's) fails the handshake.
func RunSSH(t *testing.T, b hypervisor.Backend, img *image.Image, format string, bootTimeout time.Duration) {
	t.Helper()
	v, _ := Boot(t, b, img, vm.Options{Format: format, SSH: true})
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.Exec(ctx, "kitrun-ping", nil)
	if err != nil || string(r.Stdout) != "pong\n" {
		t.Fatalf("kitrun-ping over SSH: %q, %v", r.Stdout, err)
	}
	fi, err := v.Stat(ctx, vm.GuestHostKey)
	if err != nil || fi.Mode != "0600" || !strings.Contains(string(fi.Content), "OPENSSH PRIVATE KEY") {
		t.Errorf("the delivered host key: mode %s, %v", fi.Mode, err)
	}
	if err := v.Shutdown(context.Background(), time.Minute); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
