// Package resume is `kitrun resume`: restart a paused VM's virtual CPUs.
package resume

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Op is the operation, for callers that skip the CLI.
var Op = supervise.VMOp{
	Use:   "resume NAME",
	Short: "Resume a paused VM",
	Op: func(ctx context.Context, store *lifecycle.Store, name string) error {
		_, err := store.Resume(ctx, name)
		return err
	},
	Done: "resumed",
}

// New returns the command.
func New() *cobra.Command { return Op.Command() }
