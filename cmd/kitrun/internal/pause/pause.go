// Package pause is `kitrun pause`: stop a detached VM's virtual CPUs.
package pause

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Op is the operation, for callers that skip the CLI.
var Op = supervise.VMOp{
	Use:   "pause NAME",
	Short: "Pause a ready VM (its virtual CPUs stop; memory stays)",
	Op: func(ctx context.Context, store *lifecycle.Store, name string) error {
		_, err := store.Pause(ctx, name)
		return err
	},
	Done: "paused",
}

// New returns the command.
func New() *cobra.Command { return Op.Command() }
