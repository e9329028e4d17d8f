package gcp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSDKBoundaries: Google's API clients reach kitrun's command only,
// never the packages testcases/vmtest users import (nor the shared cloud
// plumbing), and the fakes reach no binary.
func TestSDKBoundaries(t *testing.T) {
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
		if strings.HasPrefix(p, "google.golang.org/api") || strings.HasPrefix(p, "cloud.google.com/") || strings.HasPrefix(p, "golang.org/x/oauth2") || strings.HasSuffix(p, "hypervisor/gcp") {
			t.Errorf("%s is linked into what vmtest users import", p)
		}
	}
	sdk := false
	for _, p := range deps("github.com/kitrun/kitrun/cmd/kitrun") {
		if strings.Contains(p, "fake-gcs-server") || strings.Contains(p, "gcpfake") {
			t.Errorf("the kitrun binary links the fake %s", p)
		}
		sdk = sdk || p == "google.golang.org/api/compute/v1"
	}
	if !sdk {
		t.Error("the kitrun binary lacks the Compute Engine client: is the gcp backend registered?")
	}
}
