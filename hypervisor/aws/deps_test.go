package aws_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSDKBoundaries: the AWS SDK reaches kitrun's command only, never the
// packages testcases/vmtest users import (nor the shared cloud plumbing),
// and the fakes reach no binary.
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
		if strings.Contains(p, "aws-sdk-go") || strings.Contains(p, "smithy-go") || strings.HasSuffix(p, "hypervisor/aws") {
			t.Errorf("%s is linked into what vmtest users import", p)
		}
	}
	sdk := false
	for _, p := range deps("github.com/kitrun/kitrun/cmd/kitrun") {
		if strings.Contains(p, "gofakes3") || strings.Contains(p, "awsfake") {
			t.Errorf("the kitrun binary links the fake %s", p)
		}
		sdk = sdk || strings.Contains(p, "aws-sdk-go-v2/service/ec2")
	}
	if !sdk {
		t.Error("the kitrun binary lacks the EC2 client: is the aws backend registered?")
	}
}
