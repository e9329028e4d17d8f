// Package kill is `kitrun kill`: end a detached VM at once.
package kill

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
)

// Options are kill's flags and arguments.
type Options struct {
	StateDir string
	Names    []string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "kill NAME...",
		Short: "End detached VMs at once (no onshutdown tasks)",
		Long: `End detached VMs at once: QEMU is killed, no onshutdown task runs. If a VM's
supervisor does not answer, the supervisor and QEMU are killed by their
recorded (and verified) process ids. Killing a VM that is not running says so
and succeeds.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	return cmd
}

// Run kills each VM; the first error decides the exit code.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	var first error
	for _, name := range o.Names {
		kctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		v, changed, err := store.Kill(kctx, name)
		cancel()
		switch {
		case err != nil:
			if first == nil {
				first = err
			} else {
				fmt.Fprintf(stderr, "kitrun: %v\n", err)
			}
		case !changed:
			reason := ""
			if v.State.Reason != "" {
				reason = " (" + v.State.Reason + ")"
			}
			fmt.Fprintf(stdout, "%s is already %s%s\n", name, v.State.State, reason)
		default:
			fmt.Fprintf(stdout, "%s killed\n", name)
		}
	}
	return supervise.Err(first)
}
