//go:build !kitrun_noazure

package cmdutil

// The Azure backend links the Azure SDK (see the README for its cost):
// kitrun's command only, never what vmtest users import. Build with
// -tags kitrun_noazure to leave it out.
import _ "github.com/kitrun/kitrun/hypervisor/azure"
