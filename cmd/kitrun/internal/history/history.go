// Package history is `kitrun history`: bring bench results into the
// history store, list a metric over time, check the newest run for
// regressions, and plot a metric. The store and the statistics are
// bench/history's; this package is flags and output.
package history

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	khistory "github.com/kitrun/kitrun/bench/history"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// New returns the command and its subcommands.
func New() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history",
		Short: "The history of bench results: import, list, check for regressions, plot",
		Long: `kitrun bench --record appends every bench to the history, a SQLite file
(default ` + "`" + `~/.local/state/kitrun/history.db` + "`" + `, or --db). These commands read it:
import older results files, list a metric per configuration over time, check
the newest run against its recent baseline (exit 8 on a regression), and plot
a metric as SVG.`,
	}
	cmd.AddCommand(newImport(), newLs(), newCheck(), newPlot())
	return cmd
}

// AddDBFlag adds --db, the history file.
func AddDBFlag(cmd *cobra.Command, db *string) {
	cmd.Flags().StringVar(db, "db", khistory.DefaultPath(), "the history (a SQLite file; bench --record and history import create it)")
}

// open opens the store, with the exit code of a usage error.
func open(path string) (*khistory.Store, error) {
	s, err := khistory.Open(path)
	if err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	return s, nil
}

// OpenExisting opens a store that must already exist: the commands that
// only read it must not leave an empty history behind a mistyped --db.
func OpenExisting(path string) (*khistory.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("no history at %s: record one with `kitrun bench --record` or `kitrun history import`, or give --db", path))
	}
	s, err := khistory.Open(path)
	if err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	return s, nil
}

// ParseSince reads --since: an age ("30d", "12h", "2w") or a date
// ("2026-01-31", RFC 3339). Empty is the zero time (no limit).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			var v float64
			if _, err := fmt.Sscanf(n, "%g", &v); err == nil && v >= 0 {
				return now.Add(-time.Duration(v * float64(u.d))), nil
			}
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad --since %q: want an age like 30d, 2w or 12h, or a date like 2026-01-31", s)
}
