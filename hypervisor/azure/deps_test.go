package azure_test

import (
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
)

// TestSDKBoundaries: the Azure SDK reaches kitrun's command only, never
// the packages testcases/vmtest users import (nor the shared cloud
// plumbing), and the fake reaches no binary.
func TestSDKBoundaries(t *testing.T) {
	hypervisortest.CheckSDKBoundaries(t, hypervisortest.SDKBoundaries{
		Backend:    "azure",
		SDK:        func(p string) bool { return strings.Contains(p, "azure-sdk-for-go") },
		Fake:       func(p string) bool { return strings.Contains(p, "azurefake") },
		Client:     func(p string) bool { return strings.Contains(p, "armcompute") },
		ClientName: "armcompute",
		Unwanted: func(p string) string {
			if strings.Contains(p, "apache/arrow-go") {
				return "azblob's container client brings it; sweep lists blobs without it"
			}
			return ""
		},
	})
}
