// Package root wires kitrun's commands together and maps their errors to
// exit codes.
package root

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/guestbin"
	"github.com/kitrun/kitrun/boot/runtimedir"
	"github.com/kitrun/kitrun/hypervisor/vm/termsafe"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/audit"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/bench"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/build"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cloud"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/console"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/dashboard"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/history"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/inspect"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/kill"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/logs"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/pause"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/prune"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/ps"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/resume"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/rm"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/run"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/ssh"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/stop"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/test"
	"github.com/kitrun/kitrun/internal/version"
)

// New returns the root command.
func New(stdout, stderr io.Writer) *cobra.Command {
	v := version.Get()
	cmd := &cobra.Command{
		Use:   "kitrun",
		Short: "Assemble, boot, measure and test minimal Linux images",
		// Printed by cobra's default --version ("kitrun version ..."): a
		// template of our own would link text/template, and with it
		// every exported method (+1.6 MB).
		Version:       fmt.Sprintf("%s (%s %s)", v, v.Go, v.Platform),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.AddCommand(build.New(), audit.New(), run.New(), bench.New(), history.New(), dashboard.New())
	cmd.AddCommand(ps.New(), logs.New(), console.New(), pause.New(), resume.New(), stop.New(), kill.New(), rm.New(), inspect.New(), prune.New(), supervise.New())
	cmd.AddCommand(test.New(), ssh.New(), cloud.New())
	cmd.AddCommand(newVersion())
	return cmd
}

// newVersion is `kitrun version`: --version's facts one per line, and the
// guest programs this kitrun carries.
func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kitrun's version, the Go that built it, and the guest programs it embeds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprint(out, version.Get().Long())
			m, err := guestbin.Embedded()
			if err != nil {
				return err
			}
			var programs []string
			for _, p := range guestbin.Programs {
				programs = append(programs, p.Name)
			}
			fmt.Fprintf(out, "embedded  %s for %s, built with %s\n", strings.Join(programs, ", "),
				strings.Join(m.Arches(), ", "), strings.Join(m.GoVersions(), ", "))
			return nil
		},
	}
}

// Main runs kitrun with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	sweepLeftovers(stderr)
	defer runtimedir.Remove()
	cmd := New(stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return cmdutil.ExitOK
	}
	code := cmdutil.CodeOf(err)
	var ee *cmdutil.ExitError
	if !(errors.As(err, &ee) && ee.Err == nil) {
		// Errors may carry the guest's console lines.
		fmt.Fprintf(cmdutil.GuestText(stderr, termsafe.Strict), "kitrun: %v\n", err)
	}
	return code
}

// cacheSweepDepth is how deep under the cache directory kitrun writes
// results through temporary names (e.g. CACHE/images/ARCH/.NAME.tmp-…).
const cacheSweepDepth = 2

// sweepLeftovers removes what kitrun processes killed with SIGKILL (or by a
// crash) left behind: their runtime directories, with the SSH keys, sockets
// and initrds in them, the fixture daemons they recorded and the machines
// they ran on backends whose machines outlive them (see hypervisor's
// machine records), and the temporary files and directories in the default
// cache. Directories written through other paths (--cache-dir, -o) are
// swept by the first write there. Live processes' files are never touched.
// What cannot be ended now is said on stderr and tried again next time.
func sweepLeftovers(stderr io.Writer) {
	if _, err := runtimedir.Sweep(); err != nil {
		fmt.Fprintf(cmdutil.GuestText(stderr, termsafe.Strict), "kitrun: warning: %v\n", err)
	}
	sweepTree(assemble.DefaultCacheDir(), cacheSweepDepth)
}

func sweepTree(dir string, depth int) {
	atomicfile.SweepStale(dir)
	if depth == 0 {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() { // follows links to shared caches
			sweepTree(p, depth-1)
		}
	}
}
