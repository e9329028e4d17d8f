package history

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	khistory "github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// LsOptions are `history ls`'s flags.
type LsOptions struct {
	DB      string
	Metrics []string
	Configs []string
	Since   string
}

func newLs() *cobra.Command {
	o := &LsOptions{}
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List metrics per configuration over time: dates, versions, medians and 95% confidence intervals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return RunLs(cmd, o, cmd.OutOrStdout())
		},
	}
	AddDBFlag(cmd, &o.DB)
	cmd.Flags().StringSliceVar(&o.Metrics, "metric", []string{"boot.all_ready"}, "metrics (names, or families like mem.*)")
	cmd.Flags().StringSliceVar(&o.Configs, "config", nil, "configuration IDs (default: all)")
	cmd.Flags().StringVar(&o.Since, "since", "", "only runs since: an age (30d, 2w, 12h) or a date (2026-01-31)")
	return cmd
}

// RunLs prints, per configuration and metric, a line per run.
func RunLs(cmd *cobra.Command, o *LsOptions, out io.Writer) error {
	since, err := ParseSince(o.Since, time.Now())
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	s, err := OpenExisting(o.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	series, err := s.Load(cmd.Context(), khistory.Query{Metrics: o.Metrics, Configs: o.Configs, Since: since})
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if len(series) == 0 {
		fmt.Fprintf(out, "no runs in %s match\n", o.DB)
		return nil
	}
	for i, sr := range series {
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "%s  %s\n", sr.Config.ID, sr.Metric)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "run\tstarted\tkitrun\tcommit\tqemu\tkernel\tn\tmedian\t95%% CI\n")
		for _, p := range sr.Points {
			commit := p.GitCommit
			if len(commit) > 12 {
				commit = commit[:12]
			}
			fmt.Fprintf(tw, "#%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t[%s, %s]\n", p.Run.ID, p.Run.Started.UTC().Format("2006-01-02 15:04"),
				p.Run.Kitrun, orDash(commit), orDash(p.Run.QEMU), orDash(p.Kernel), p.N,
				khistory.FormatValue(p.Median, sr.Unit), khistory.FormatValue(p.Lo, sr.Unit), khistory.FormatValue(p.Hi, sr.Unit))
		}
		tw.Flush()
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
