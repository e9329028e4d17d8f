// Package supervise is the hidden `kitrun supervise` command that
// `kitrun run -d` starts, detached, to run one VM (see hypervisor/lifecycle),
// and the little the VM lifecycle commands share: the --state-dir flag and the
// exit codes of lifecycle errors.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
)

// Options are supervise's flags and arguments.
type Options struct {
	StateDir string
	Name     string
	// ReportFD is the pipe on which `run -d` waits for ready or failure.
	ReportFD int
}

// New returns the command. It is hidden: users never run it themselves.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:    "supervise --state-dir DIR NAME",
		Short:  "Run one detached VM (started by kitrun run -d)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return Run(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	AddStateDirFlag(cmd, &o.StateDir)
	cmd.Flags().IntVar(&o.ReportFD, "report-fd", 0, "file descriptor to report the boot's progress on")
	return cmd
}

// Run supervises the VM until it ends. SIGTERM and SIGINT stop it
// gracefully; SIGHUP is ignored.
func Run(ctx context.Context, o *Options, log io.Writer) error {
	store, err := lifecycle.Open(o.StateDir)
	if err != nil {
		return err
	}
	var report io.WriteCloser
	if o.ReportFD > 0 {
		report = os.NewFile(uintptr(o.ReportFD), "report")
	}
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return Err(lifecycle.Supervise(ctx, lifecycle.SuperviseOptions{
		Store: store, Name: o.Name, Report: report, Log: log,
	}))
}

// AddStateDirFlag adds --state-dir to a lifecycle command.
func AddStateDirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "state-dir", "", lifecycle.StateDirUsage)
}

// Err gives lifecycle errors their exit codes (README: "VM lifecycle").
func Err(err error) error {
	if err == nil {
		return nil
	}
	var (
		nf *lifecycle.NotFoundError
		ex *lifecycle.ExistsError
		co *lifecycle.CorruptError
		se *lifecycle.StateError
		bu *lifecycle.BusyError
		be *lifecycle.BootError
		ee *cmdutil.ExitError
	)
	switch {
	case errors.As(err, &ee):
		return err
	case errors.As(err, &nf):
		return cmdutil.WithCode(cmdutil.ExitNoSuchVM, err)
	case errors.As(err, &ex):
		return cmdutil.WithCode(cmdutil.ExitVMExists, err)
	case errors.As(err, &co):
		return cmdutil.WithCode(cmdutil.ExitStateCorrupt, err)
	case errors.As(err, &se):
		return cmdutil.WithCode(cmdutil.ExitVMState, err)
	case errors.As(err, &bu):
		return cmdutil.WithCode(cmdutil.ExitVMBusy, err)
	case errors.As(err, &be):
		return cmdutil.WithCode(BootCode(be.Failure), err)
	}
	return err
}

// BootCode is `kitrun run`'s exit code for a detached boot's failure kind.
func BootCode(failure string) int {
	switch failure {
	case lifecycle.FailBootTimeout:
		return cmdutil.ExitBootTimeout
	case lifecycle.FailServiceFailed:
		return cmdutil.ExitServiceFailed
	case lifecycle.FailPanic:
		return cmdutil.ExitPanic
	case lifecycle.FailEarlyExit:
		return cmdutil.ExitEarlyExit
	}
	return cmdutil.ExitFailure
}

// Store opens the state directory of a command's --state-dir.
func Store(dir string) (*lifecycle.Store, error) {
	return lifecycle.Open(dir)
}

// VMOp is a command that applies one quick operation to a detached VM by
// name (pause, resume): the shape those commands share.
type VMOp struct {
	Use, Short string
	// Op runs the operation under a 30 s deadline.
	Op func(ctx context.Context, store *lifecycle.Store, name string) error
	// Done is printed after the name on success ("paused").
	Done string
}

// Command builds the cobra command for the operation.
func (op VMOp) Command() *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   op.Use,
		Short: op.Short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return op.Run(cmd.Context(), stateDir, args[0], cmd.OutOrStdout())
		},
	}
	AddStateDirFlag(cmd, &stateDir)
	return cmd
}

// Run applies the operation to the VM called name.
func (op VMOp) Run(ctx context.Context, stateDir, name string, stdout io.Writer) error {
	store, err := Store(stateDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := op.Op(ctx, store, name); err != nil {
		return Err(err)
	}
	fmt.Fprintf(stdout, "%s %s\n", name, op.Done)
	return nil
}
