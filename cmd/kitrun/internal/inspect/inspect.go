// Package inspect is `kitrun inspect`: everything kitrun knows of a VM, as JSON.
package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Options are inspect's flags and arguments.
type Options struct {
	StateDir string
	Name     string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a VM's metadata, state, live status and files as JSON",
		Long: `Show what kitrun knows of a VM as JSON: meta.json, state.json (checked against
the host's processes), and, while it runs, what its supervisor says now
(QEMU's run state from QMP, QEMU's resident memory).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	return cmd
}

// Output is what inspect prints.
type Output struct {
	Name  string          `json:"name"`
	Dir   string          `json:"dir"`
	Meta  lifecycle.Meta  `json:"meta"`
	State lifecycle.State `json:"state"`
	// Live is the supervisor's answer (running VMs only).
	Live      *lifecycle.Live `json:"live,omitempty"`
	LiveError string          `json:"live_error,omitempty"`
	Files     Files           `json:"files"`
}

// Files are the VM's files.
type Files struct {
	Console       string `json:"console_log"`
	Events        string `json:"events_log"`
	SupervisorLog string `json:"supervisor_log"`
	ControlSocket string `json:"control_socket"`
}

// Run prints the VM.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return err
	}
	v, err := store.Get(o.Name)
	if err != nil {
		return supervise.Err(err)
	}
	out := Output{Name: v.Name, Dir: v.Dir, Meta: v.Meta, State: v.State, Files: Files{
		Console:       store.Path(v.Name, lifecycle.ConsoleFile),
		Events:        store.Path(v.Name, lifecycle.EventsFile),
		SupervisorLog: store.Path(v.Name, lifecycle.SupervisorLog),
		ControlSocket: store.Path(v.Name, lifecycle.ControlSocket),
	}}
	if v.Running() {
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		out.Live, err = store.Live(lctx, v.Name)
		cancel()
		if err != nil {
			out.LiveError = err.Error()
			fmt.Fprintf(stderr, "kitrun: %v\n", err)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
