package cloud

import (
	"errors"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// A seed goes to a cloud machine only when its image fetches it from the
// platform's metadata service, and fits the platform's limit.
func TestCheckSeed(t *testing.T) {
	withSeed := "quiet console=ttyS0 " + initproto.ParamSeed + "=" + initproto.SeedAWS
	if err := CheckSeed("aws", nil, "quiet", initproto.SeedAWS, 16); err != nil {
		t.Errorf("no seed: %v", err)
	}
	if err := CheckSeed("aws", []byte("seed"), withSeed, initproto.SeedAWS, 16); err != nil {
		t.Errorf("an image that fetches it: %v", err)
	}
	var ue *hypervisor.UnsupportedError
	err := CheckSeed("aws", []byte("seed"), "quiet console=ttyS0", initproto.SeedAWS, 16)
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "network") {
		t.Errorf("an image without the seed parameter (no network): %v", err)
	}
	err = CheckSeed("gcp", []byte("seed"), withSeed, initproto.SeedGCE, 16)
	if !errors.As(err, &ue) {
		t.Errorf("an image wired for another platform's source: %v", err)
	}
	if err := CheckSeed("aws", make([]byte, 17), withSeed, initproto.SeedAWS, 16); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("a seed over the limit: %v", err)
	}
}
