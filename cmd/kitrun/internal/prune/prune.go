// Package prune is `kitrun prune`: remove every stopped or failed VM.
package prune

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Options are prune's flags.
type Options struct {
	StateDir string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the state of every stopped or failed VM",
		Long: `Remove the state directory of every VM that is stopped or failed (a VM whose
supervisor died counts as failed). Running VMs, busy ones and ones whose
state files are unreadable are left alone and named.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	return cmd
}

// Run prunes; it prints each removed VM's name.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := store.Prune(ctx)
	if err != nil {
		return err
	}
	for _, n := range res.Removed {
		fmt.Fprintln(stdout, n)
	}
	running := 0
	for n, err := range res.Skipped {
		if lifecycle.IsRunningSkip(err) {
			running++
			continue
		}
		fmt.Fprintf(stderr, "kitrun: kept %s: %v\n", n, err)
	}
	fmt.Fprintf(stderr, "kitrun: removed %d VMs; %d running\n", len(res.Removed), running)
	return nil
}
