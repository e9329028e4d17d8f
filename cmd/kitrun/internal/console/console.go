// Package console is `kitrun console`: attach the terminal to a detached VM's
// console.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
	"github.com/kitrun/kitrun/hypervisor/vm/termsafe"
)

// DetachKey is Ctrl-].
const DetachKey = 0x1d

// Options are console's flags and arguments.
type Options struct {
	StateDir string
	Name     string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to a running VM's console (Ctrl-] detaches)",
		Long: `Attach to a running VM's console: its output from now on is printed, and
what you type goes to the guest's console (the terminal is put in raw mode;
Ctrl-] detaches). The session ends when the VM does. ` + "`kitrun logs NAME`" + ` shows
what came before.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return Run(cmd.Context(), o, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	return cmd
}

// Run attaches until the VM ends or the user detaches.
func Run(ctx context.Context, o *Options, stdin *os.File, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	var in io.Reader
	var opts lifecycle.AttachOptions
	if stdin != nil {
		in = stdin
		if restore, err := cmdutil.MakeRaw(int(stdin.Fd())); err == nil {
			defer restore()
			opts.DetachKey = DetachKey
			fmt.Fprintf(stderr, "kitrun: attached to %s's console; Ctrl-] detaches\r\n", o.Name)
		}
	}
	err = store.Attach(ctx, o.Name, in, cmdutil.GuestText(stdout, termsafe.Interactive), opts)
	switch {
	case errors.Is(err, lifecycle.ErrDetached):
		fmt.Fprintf(stderr, "\r\nkitrun: detached from %s\r\n", o.Name)
		return nil
	case err != nil:
		return supervise.Err(err)
	}
	if v, err := store.Get(o.Name); err == nil {
		fmt.Fprintf(stderr, "\r\nkitrun: %s %s: %s\r\n", o.Name, v.State.State, v.State.Reason)
	}
	return nil
}
