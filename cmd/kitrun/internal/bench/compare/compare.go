// Package compare is `kitrun bench compare`: old results against new, with
// a significance test, as a gate for nightly runs.
package compare

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	kbench "github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// Options are compare's flags and arguments.
type Options struct {
	Old, New      string
	MaxRegression string
	Alpha         float64
	Metrics       []string
	Format        string
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "compare OLD NEW",
		Short: "Compare two bench results (JSON or benchfmt); fail on a significant regression",
		Long: `Compare every metric of every configuration the two results share: old and
new medians, the change, and a two-sided Mann-Whitney U test (exact p for
small samples without ties, normal approximation otherwise). "~" marks a
change that is not significant. Sizes are exact: any change counts.
Exits 8 when a metric got worse by more than --max-regression and the change
is significant.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Old, o.New = args[0], args[1]
			return Run(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.MaxRegression, "max-regression", "5%", "largest tolerated significant worsening")
	cmd.Flags().Float64Var(&o.Alpha, "alpha", kbench.DefaultAlpha, "significance level")
	cmd.Flags().StringSliceVar(&o.Metrics, "metric", nil, "compare only these metrics (names, or families like mem.*)")
	cmd.Flags().StringVar(&o.Format, "format", kbench.FormatTable, "output format: "+strings.Join(kbench.CompareFormats, ", "))
	return cmd
}

// Run compares the two files.
func Run(o *Options, out io.Writer) error {
	if o.Format == "" {
		o.Format = kbench.FormatTable
	}
	if !slices.Contains(kbench.CompareFormats, o.Format) {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("unknown --format %q; valid: %s", o.Format, strings.Join(kbench.CompareFormats, ", ")))
	}
	maxReg, err := kbench.ParsePercent(o.MaxRegression)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--max-regression: %w", err))
	}
	if err := kbench.ValidateMetricNames(o.Metrics); err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	old, err := kbench.ReadResults(o.Old)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	cur, err := kbench.ReadResults(o.New)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	c, err := kbench.Compare(old, cur, kbench.CompareOptions{Alpha: o.Alpha, MaxRegression: maxReg, Metrics: o.Metrics})
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if err := c.WriteFormat(out, o.Format); err != nil {
		return err
	}
	if regs := c.Regressions(); len(regs) > 0 {
		return cmdutil.WithCode(cmdutil.ExitRegression, fmt.Errorf("%d metric(s) regressed beyond %s", len(regs), o.MaxRegression))
	}
	return nil
}
