// Package rm is `kitrun rm`: remove detached VMs' state.
package rm

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
)

// Options are rm's flags and arguments.
type Options struct {
	StateDir string
	Names    []string
	Force    bool
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "rm [-f] NAME...",
		Short: "Remove stopped VMs' state and logs (-f: kill running ones first)",
		Long: `Remove VMs' state directories (state, logs, sockets). A running VM, or one
whose state files are unreadable, is only removed with -f, which kills it
first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "kill a running VM first")
	return cmd
}

// Run removes each VM; the first error decides the exit code.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	var first error
	for _, name := range o.Names {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := store.Remove(rctx, name, o.Force)
		cancel()
		if err != nil {
			if first == nil {
				first = err
			} else {
				fmt.Fprintf(stderr, "kitrun: %v\n", err)
			}
			continue
		}
		fmt.Fprintln(stdout, name)
	}
	return supervise.Err(first)
}
