// Package ssh is `kitrun ssh`: a shell or a command in a detached VM, over
// SSH with this boot's keys and its pinned host key.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	xssh "golang.org/x/crypto/ssh"
	xterm "golang.org/x/term"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
)

// Options are ssh's flags and arguments.
type Options struct {
	Name     string
	Command  []string
	StateDir string
	Timeout  time.Duration
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "ssh NAME [-- COMMAND...]",
		Short: "Open a shell in a detached VM, or run a command there, over SSH",
		Long: `Log in to a VM started with kitrun run -d whose image has an SSH server
(ssh: true in its spec), with the keys generated for this boot; the guest's
host key is pinned, never trusted on first use. With a command, its stdin,
stdout and stderr are wired through and kitrun exits with its status.
Without one, a terminal session (the image needs a shell, e.g. busybox).
The key and known_hosts files are in the VM's state directory for OpenSSH.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name, o.Command = args[0], args[1:]
			return Run(cmd.Context(), o, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	cmd.Flags().DurationVar(&o.Timeout, "connect-timeout", 30*time.Second, "deadline for connecting")
	return cmd
}

// Run connects and runs the session.
func Run(ctx context.Context, o *Options, stdin io.Reader, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	target, err := store.SSH(o.Name)
	if err != nil {
		return supervise.Err(err)
	}
	cfg, err := target.ClientConfig()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	cfg.Timeout = o.Timeout
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", target.Addr)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("ssh %s: %w", o.Name, err))
	}
	c, chans, reqs, err := xssh.NewClientConn(conn, target.Addr, cfg)
	if err != nil {
		conn.Close()
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("ssh %s: %w", o.Name, err))
	}
	client := xssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr

	if len(o.Command) > 0 {
		err = sess.Run(strings.Join(o.Command, " "))
	} else {
		err = shell(sess, stdin)
	}
	var exit *xssh.ExitError
	if errors.As(err, &exit) {
		// The remote status is kitrun's: scripts see what the guest said.
		return &cmdutil.ExitError{Code: exit.ExitStatus()}
	}
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	return nil
}

// shell runs an interactive session on a pty, with the local terminal raw.
func shell(sess *xssh.Session, stdin io.Reader) error {
	term, width, height := "dumb", 80, 24
	if f, ok := stdin.(*os.File); ok {
		if w, h, err := xterm.GetSize(int(f.Fd())); err == nil {
			width, height = w, h
			if t := os.Getenv("TERM"); t != "" {
				term = t
			}
			restore, err := cmdutil.MakeRaw(int(f.Fd()))
			if err == nil {
				defer restore()
			}
		}
	}
	if err := sess.RequestPty(term, height, width, xssh.TerminalModes{xssh.ECHO: 1}); err != nil {
		return err
	}
	if err := sess.Shell(); err != nil {
		return err
	}
	return sess.Wait()
}
