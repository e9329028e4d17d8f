package history

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	khistory "github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// PlotOptions are `history plot`'s flags.
type PlotOptions struct {
	DB      string
	Metric  string
	Configs []string
	Since   string
	Output  string
}

func newPlot() *cobra.Command {
	o := &PlotOptions{}
	cmd := &cobra.Command{
		Use:   "plot --metric METRIC -o FILE.svg",
		Short: "Plot one metric over time as SVG: samples, median, 95% band and change points per configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return RunPlot(cmd, o, cmd.ErrOrStderr())
		},
	}
	AddDBFlag(cmd, &o.DB)
	cmd.Flags().StringVar(&o.Metric, "metric", "boot.all_ready", "the metric")
	cmd.Flags().StringSliceVar(&o.Configs, "config", nil, "configuration IDs (default: all)")
	cmd.Flags().StringVar(&o.Since, "since", "", "only runs since: an age (30d, 2w, 12h) or a date (2026-01-31)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "the SVG file to write (atomically)")
	return cmd
}

// RunPlot writes the plot.
func RunPlot(cmd *cobra.Command, o *PlotOptions, log io.Writer) error {
	if o.Output == "" {
		return cmdutil.WithCode(cmdutil.ExitFailure, errors.New("-o FILE.svg is required"))
	}
	since, err := ParseSince(o.Since, time.Now())
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	s, err := OpenExisting(o.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	// Every sample of the newest 60 runs; older runs as their summaries.
	series, err := s.Load(cmd.Context(), khistory.Query{Metrics: []string{o.Metric}, Configs: o.Configs, Since: since, SampleRuns: 60})
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if len(series) == 0 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("no runs of %s in %s", o.Metric, o.DB))
	}
	err = atomicfile.WriteFrom(o.Output, 0o644, func(w io.Writer) error {
		return khistory.PlotSVG(w, series, o.Metric)
	})
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	fmt.Fprintf(log, "kitrun: %s written (%d configuration(s))\n", o.Output, len(series))
	return nil
}
