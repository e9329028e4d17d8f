package aws_test

import (
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
)

// TestSDKBoundaries: the AWS SDK reaches kitrun's command only, never the
// packages testcases/vmtest users import (nor the shared cloud plumbing),
// and the fakes reach no binary.
func TestSDKBoundaries(t *testing.T) {
	hypervisortest.CheckSDKBoundaries(t, hypervisortest.SDKBoundaries{
		Backend: "aws",
		SDK: func(p string) bool {
			return strings.Contains(p, "aws-sdk-go") || strings.Contains(p, "smithy-go")
		},
		Fake: func(p string) bool {
			return strings.Contains(p, "gofakes3") || strings.Contains(p, "awsfake")
		},
		Client:     func(p string) bool { return strings.Contains(p, "aws-sdk-go-v2/service/ec2") },
		ClientName: "the EC2 client",
	})
}
