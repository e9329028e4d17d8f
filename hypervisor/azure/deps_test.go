package azure_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSDKBoundaries: the Azure SDK reaches kitrun's command only, never
// the packages testcases/vmtest users import (nor the shared cloud
// plumbing), and the fake reaches no binary.
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
		if strings.Contains(p, "azure-sdk-for-go") || strings.HasSuffix(p, "hypervisor/azure") {
			t.Errorf("%s is linked into what vmtest users import", p)
		}
	}
	sdk := false
	for _, p := range deps("github.com/kitrun/kitrun/cmd/kitrun") {
		if strings.Contains(p, "azurefake") {
			t.Errorf("the kitrun binary links the fake %s", p)
		}
		if strings.Contains(p, "apache/arrow-go") {
			t.Errorf("the kitrun binary links %s (azblob's container client brings it; sweep lists blobs without it)", p)
		}
		sdk = sdk || strings.Contains(p, "armcompute")
	}
	if !sdk {
		t.Error("the kitrun binary lacks armcompute: is the azure backend registered?")
	}
}
