package history

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	kbench "github.com/kitrun/kitrun/bench"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
)

// ImportOptions are `history import`'s flags and arguments.
type ImportOptions struct {
	DB    string
	Files []string
}

func newImport() *cobra.Command {
	o := &ImportOptions{}
	cmd := &cobra.Command{
		Use:   "import RESULTS.json...",
		Short: "Add bench results files (JSON) to the history; a run already there is skipped",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Files = args
			return RunImport(cmd, o, cmd.OutOrStdout())
		},
	}
	AddDBFlag(cmd, &o.DB)
	return cmd
}

// RunImport records every file; a file that cannot be read is reported and
// the others still imported, and the command then fails.
func RunImport(cmd *cobra.Command, o *ImportOptions, out io.Writer) error {
	s, err := open(o.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	failed := 0
	for _, f := range o.Files {
		r, err := kbench.ReadResults(f)
		if err == nil && r.Started.IsZero() {
			err = fmt.Errorf("%s: no start time (benchfmt files cannot be placed in time: import the JSON results)", f)
		}
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "kitrun: %v\n", err)
			failed++
			continue
		}
		rec, err := s.Record(cmd.Context(), r, f)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "kitrun: %v\n", err)
			failed++
			continue
		}
		if rec.Duplicate {
			fmt.Fprintf(out, "%s: already in the history (run #%d)\n", f, rec.RunID)
		} else {
			fmt.Fprintf(out, "%s: run #%d, %d samples\n", f, rec.RunID, rec.Samples)
		}
	}
	if failed > 0 {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("%d of %d file(s) not imported", failed, len(o.Files)))
	}
	return nil
}
