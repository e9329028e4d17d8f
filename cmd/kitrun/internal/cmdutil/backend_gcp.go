//go:build !kitrun_nogcp

package cmdutil

// The GCP backend links Google's REST API clients (compute/v1,
// storage/v1, oauth2): kitrun's command only, never what vmtest users
// import. Build with -tags kitrun_nogcp to leave it out.
import _ "github.com/kitrun/kitrun/hypervisor/gcp"
