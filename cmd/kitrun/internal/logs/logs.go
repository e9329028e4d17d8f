// Package logs is `kitrun logs`: a detached VM's console or events.
package logs

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
	"github.com/kitrun/kitrun/hypervisor/vm/termsafe"
)

// Options are logs' flags and arguments.
type Options struct {
	StateDir string
	Name     string
	Follow   bool
	Events   bool
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "logs [-f] [--events] NAME",
		Short: "Print a VM's console log (or its events), optionally following it",
		Long: `Print a VM's console (console.log.1, then console.log), or with --events its
events.log (host time, kind, name, detail; tab-separated). With -f, keep
printing until the VM ends or Ctrl-C.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing until the VM ends")
	cmd.Flags().BoolVar(&o.Events, "events", false, "print events.log instead of the console")
	return cmd
}

// Run prints the log.
func Run(ctx context.Context, o *Options, stdout io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return supervise.Err(store.Logs(ctx, o.Name, cmdutil.GuestText(stdout, termsafe.Strict), lifecycle.LogOptions{Follow: o.Follow, Events: o.Events}))
}
