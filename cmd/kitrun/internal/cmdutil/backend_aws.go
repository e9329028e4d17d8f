//go:build !kitrun_noaws

package cmdutil

// The AWS backend links the AWS SDK (about +10 MB of binary, +7 MB
// stripped): kitrun's command only, never what vmtest users import. Build
// with -tags kitrun_noaws to leave it out.
import _ "github.com/kitrun/kitrun/hypervisor/aws"
