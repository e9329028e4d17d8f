// Package resume is `kitrun resume`: restart a paused VM's virtual CPUs.
package resume

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
)

// Options are resume's flags and arguments.
type Options struct {
	StateDir string
	Name     string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Resume a paused VM",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	return cmd
}

// Run resumes the VM.
func Run(ctx context.Context, o *Options, stdout io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := store.Resume(ctx, o.Name); err != nil {
		return supervise.Err(err)
	}
	fmt.Fprintf(stdout, "%s resumed\n", o.Name)
	return nil
}
