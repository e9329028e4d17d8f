package history

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	kbench "github.com/kitrun/kitrun/bench"
	khistory "github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// CheckOptions are `history check`'s flags.
type CheckOptions struct {
	DB            string
	MaxRegression string
	Alpha         float64
	Baseline      int
	Metrics       []string
	Configs       []string
}

func newCheck() *cobra.Command {
	o := &CheckOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Fail (exit 8) when the newest run is a significant regression against the recent baseline",
		Long: `For every configuration and metric, compare the newest run's samples with
those of the --baseline runs before it (two-sided Mann-Whitney U test; sizes are
exact). A regression is significant (p < --alpha) and worse than the baseline's
median by more than --max-regression. Each is printed with the run where the
series changed (the last change point in the worse direction, found by a
windowed Mann-Whitney test with a minimum effect), its date, kitrun version and
the spec's git commit. Exits 8 when there is one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return RunCheck(cmd, o, cmd.OutOrStdout())
		},
	}
	AddDBFlag(cmd, &o.DB)
	cmd.Flags().StringVar(&o.MaxRegression, "max-regression", "5%", "largest tolerated significant worsening of a median")
	cmd.Flags().Float64Var(&o.Alpha, "alpha", 0.01, "significance level")
	cmd.Flags().IntVar(&o.Baseline, "baseline", khistory.DefaultBaseline, "runs before the newest that form the baseline")
	cmd.Flags().StringSliceVar(&o.Metrics, "metric", nil, "check only these metrics (names, or families like mem.*)")
	cmd.Flags().StringSliceVar(&o.Configs, "config", nil, "check only these configuration IDs")
	return cmd
}

// RunCheck checks the history and prints what regressed.
func RunCheck(cmd *cobra.Command, o *CheckOptions, out io.Writer) error {
	maxReg, err := kbench.ParsePercent(o.MaxRegression)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--max-regression: %w", err))
	}
	if o.Alpha <= 0 || o.Alpha >= 1 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--alpha %v: want a level between 0 and 1, like 0.01", o.Alpha))
	}
	if o.Baseline < 1 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--baseline %d: want at least 1 run", o.Baseline))
	}
	s, err := OpenExisting(o.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.Check(cmd.Context(), khistory.CheckOptions{MaxRegression: maxReg, Alpha: o.Alpha,
		Baseline: o.Baseline, Metrics: o.Metrics, Configs: o.Configs})
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if err := res.Write(out, maxReg); err != nil {
		return err
	}
	if n := len(res.Findings); n > 0 {
		return cmdutil.WithCode(cmdutil.ExitRegression, fmt.Errorf("%d metric(s) regressed beyond %s", n, o.MaxRegression))
	}
	return nil
}
