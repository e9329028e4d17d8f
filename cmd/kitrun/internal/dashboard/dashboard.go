// Package dashboard is `kitrun dashboard`: the history as a static web page
// (bench/history/dashboard builds it).
package dashboard

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	kdashboard "github.com/kitrun/kitrun/bench/history/dashboard"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/history"
)

// Options are dashboard's flags.
type Options struct {
	DB         string
	Output     string
	Since      string
	SampleRuns int
	Title      string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "dashboard -o DIR",
		Short: "Write the history as a static web page: DIR/index.html, self-contained, and DIR/runs/ID.json",
		Long: `Write a self-contained HTML page (no network needed to open it) of the
history: per metric and configuration every sample with the median and its 95%
confidence band, change points marked with their runs and versions, a boot
waterfall per configuration, memory and disk stacked by component, and filters
by spec, arch, machine and backend. Each point links to its run's raw results
in DIR/runs/. Older runs than the newest --sample-runs are shown as medians.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return Run(cmd, o, cmd.ErrOrStderr())
		},
	}
	history.AddDBFlag(cmd, &o.DB)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "the site's directory (created when missing)")
	cmd.Flags().StringVar(&o.Since, "since", "", "only runs since: an age (90d, 2w) or a date (2026-01-31)")
	cmd.Flags().IntVar(&o.SampleRuns, "sample-runs", kdashboard.DefaultSampleRuns, "newest runs shown sample by sample (-1: all)")
	cmd.Flags().StringVar(&o.Title, "title", "kitrun performance", "the page's title")
	return cmd
}

// Run builds the site.
func Run(cmd *cobra.Command, o *Options, log io.Writer) error {
	if o.Output == "" {
		return cmdutil.WithCode(cmdutil.ExitFailure, errors.New("-o DIR is required"))
	}
	if o.SampleRuns == 0 || o.SampleRuns < -1 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--sample-runs %d: want a number of runs, or -1 for all", o.SampleRuns))
	}
	since, err := history.ParseSince(o.Since, time.Now())
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	s, err := history.OpenExisting(o.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := kdashboard.Build(cmd.Context(), s, kdashboard.Options{Dir: o.Output, SampleRuns: o.SampleRuns, Since: since, Title: o.Title})
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	fmt.Fprintf(log, "kitrun: %s/index.html: %d runs, %d series, %d points, %d samples, %d change points, %d bytes\n",
		o.Output, st.Runs, st.Series, st.Points, st.Samples, st.ChangePoints, st.HTMLBytes)
	return nil
}
