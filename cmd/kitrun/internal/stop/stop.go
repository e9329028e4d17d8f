// Package stop is `kitrun stop`: power a detached VM off gracefully.
package stop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Options are stop's flags and arguments.
type Options struct {
	StateDir string
	Names    []string
	Timeout  time.Duration
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "stop NAME...",
		Short: "Power detached VMs off gracefully (onshutdown tasks run), forced after --timeout",
		Long: `Power detached VMs off: kitinit runs the onshutdown tasks and stops the
services, then powers off. After --timeout (default: the VM's --grace) the
power-off is forced. The shutdown's duration and reason are recorded. Stopping
a VM that is not running says so and succeeds.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 0, "grace period before the power-off is forced (default: the VM's --grace, 10s)")
	return cmd
}

// Run stops each VM; the first error decides the exit code.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	var first error
	for _, name := range o.Names {
		if err := stopOne(ctx, store, name, o.Timeout, stdout); err != nil {
			if first == nil {
				first = err
			} else {
				fmt.Fprintf(stderr, "kitrun: %v\n", err)
			}
		}
	}
	return supervise.Err(first)
}

func stopOne(ctx context.Context, store *lifecycle.Store, name string, timeout time.Duration, stdout io.Writer) error {
	// The deadline: the lock, the grace period, a forced teardown.
	d := timeout
	if d <= 0 {
		d = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	v, changed, err := store.Stop(ctx, name, timeout)
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(stdout, "%s is already %s%s\n", name, v.State.State, because(v.State.Reason))
		return nil
	}
	st := v.State
	if st.ShutdownSeconds > 0 {
		fmt.Fprintf(stdout, "%s %s in %.3fs%s\n", name, st.State, st.ShutdownSeconds, because(st.Reason))
	} else {
		fmt.Fprintf(stdout, "%s %s%s\n", name, st.State, because(st.Reason))
	}
	if st.State == lifecycle.Failed {
		return errors.New(name + " failed: " + st.Reason)
	}
	return nil
}

func because(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}
