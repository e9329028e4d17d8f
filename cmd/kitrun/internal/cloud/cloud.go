// Package cloud is `kitrun cloud`: what kitrun's cloud backends need
// beside running machines — today `kitrun cloud sweep`, which removes what
// runs left behind.
package cloud

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/hypervisor"
	kcloud "github.com/kitrun/kitrun/hypervisor/cloud"
)

// New returns the command.
func New() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cloud",
		Short: "Manage what kitrun creates on cloud backends",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newSweep())
	return cmd
}

// SweepOptions are sweep's flags.
type SweepOptions struct {
	cmdutil.BackendOptions
	OlderThan time.Duration
	Run       string
	DryRun    bool
}

func newSweep() *cobra.Command {
	o := &SweepOptions{}
	cmd := &cobra.Command{
		Use:   "sweep --backend NAME",
		Short: "Delete the cloud resources kitrun runs left behind",
		Long: `Delete every resource a cloud backend created (each carries the tag
kitrun:run) that is due: past its kitrun:expires tag (an instance's lifetime,
an image's time kept for reuse), or, with --older-than, created longer ago
than that. Run it from cron to bound what a killed kitrun can cost; the
backend's options (region, endpoints, bucket) say where to look.`,
		Example: `  kitrun cloud sweep --backend aws --backend-opt region=eu-west-1 --older-than 2h
  kitrun cloud sweep --backend gcp --backend-opt project=P,zone=europe-west1-b,bucket=B
  kitrun cloud sweep --backend azure --backend-opt subscription=S,resource-group=G,location=westeurope --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return Sweep(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Backend, "backend", "", "the cloud backend: "+strings.Join(kcloud.Sweepers(), ", "))
	f.StringArrayVar(&o.Opts, "backend-opt", nil, "a backend setting, KEY=VALUE (repeatable)")
	f.DurationVar(&o.OlderThan, "older-than", 0, "also delete what was created longer ago than this, expired or not (e.g. 2h)")
	f.StringVar(&o.Run, "run", "", "only the resources of this run ID (the kitrun:run tag)")
	f.BoolVar(&o.DryRun, "dry-run", false, "list what would be deleted, delete nothing")
	cmd.MarkFlagRequired("backend")
	return cmd
}

// Sweep sweeps and prints what it removed (or would), and what it could
// not remove; that is an error.
func Sweep(ctx context.Context, o *SweepOptions, stdout, stderr io.Writer) error {
	opts, err := hypervisor.ParseOptions(o.Opts)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	s, err := kcloud.OpenSweeper(o.Backend, opts)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	so := kcloud.SweepOptions{OlderThan: o.OlderThan, Run: o.Run, DryRun: o.DryRun, Now: time.Now()}
	rep, err := s.Sweep(ctx, so)
	if rep != nil {
		verb := "deleted"
		if o.DryRun {
			verb = "would delete"
		}
		for _, r := range rep.Removed {
			_, why := so.Due(r)
			fmt.Fprintf(stdout, "%s %s (%s)\n", verb, r, why)
		}
		for _, f := range rep.Failed {
			fmt.Fprintf(stderr, "kitrun: not deleted: %s: %v\n", f.Resource, f.Err)
		}
		fmt.Fprintf(stderr, "kitrun: %s %d, kept %d, failed %d\n", verb, len(rep.Removed), len(rep.Kept), len(rep.Failed))
	}
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if err := rep.Err(); err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	return nil
}
