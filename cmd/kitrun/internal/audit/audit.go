// Package audit is `kitrun audit`: see boot/audit.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/boot/audit"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// Options are audit's flags and arguments.
type Options struct {
	Spec   string
	JSON   bool
	FailOn string
	Boot   bool
	cmdutil.BuildOptions
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "audit SPEC",
		Short: "Check a spec's kernel against KSPP and report its image's attack surface",
		Long: `Check the kernel's own config against the Kernel Self Protection Project's
recommended settings (table: setting, wanted, actual), and report the image's
attack surface: setuid/setgid files, services running as root and the
capabilities they keep, writable paths, and programs without a sandbox.
Nothing is written. --fail-on LEVEL exits 1 when a finding is at least LEVEL
(info, low, medium, high).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Spec = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "write the report as JSON")
	cmd.Flags().BoolVar(&o.Boot, "boot", false, "also boot the image (with kitrun's SSH server) and report the ports listening in the guest")
	cmd.Flags().StringVar(&o.FailOn, "fail-on", "", "exit 1 when a finding is at least this level: info, low, medium, high")
	cmdutil.AddBuildFlags(cmd, &o.BuildOptions)
	return cmd
}

// Run audits and prints.
func Run(ctx context.Context, o *Options, stdout io.Writer) error {
	var failOn audit.Level
	if o.FailOn != "" {
		var err error
		if failOn, err = audit.ParseLevel(o.FailOn); err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, err)
		}
	}
	aopts, err := o.AssembleOptions()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	s, err := spec.Parse(o.Spec)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBuild, err)
	}
	r, err := audit.Run(ctx, s, aopts)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBuild, err)
	}
	if o.Boot {
		backend, _, err := o.Target()
		if err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, err)
		}
		ports, sshPort, err := audit.BootPorts(ctx, o.Spec, backend, aopts, 3*time.Minute)
		if err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("audit --boot: %w", err))
		}
		r.AddPorts(ports, sshPort)
	}
	if o.JSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if o.FailOn != "" && r.Fails(failOn) {
		return cmdutil.WithCode(cmdutil.ExitFailure, errors.New("audit: findings at "+r.WorstFinding.String()+" (--fail-on "+o.FailOn+")"))
	}
	return nil
}
