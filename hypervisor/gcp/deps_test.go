package gcp_test

import (
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
)

// TestSDKBoundaries: Google's API clients reach kitrun's command only,
// never the packages testcases/vmtest users import (nor the shared cloud
// plumbing), and the fakes reach no binary.
func TestSDKBoundaries(t *testing.T) {
	hypervisortest.CheckSDKBoundaries(t, hypervisortest.SDKBoundaries{
		Backend: "gcp",
		SDK: func(p string) bool {
			return strings.HasPrefix(p, "google.golang.org/api") || strings.HasPrefix(p, "cloud.google.com/") || strings.HasPrefix(p, "golang.org/x/oauth2")
		},
		Fake: func(p string) bool {
			return strings.Contains(p, "fake-gcs-server") || strings.Contains(p, "gcpfake")
		},
		Client:     func(p string) bool { return p == "google.golang.org/api/compute/v1" },
		ClientName: "the Compute Engine client",
	})
}
