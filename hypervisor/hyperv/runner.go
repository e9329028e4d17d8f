package hyperv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"time"
)

// Runner runs PowerShell scripts on the Windows host: locally (a pwsh or
// powershell.exe process) or over SSH.
type Runner interface {
	// Exec runs script to its end. Its standard input is stdin (nil: none)
	// after the script itself; its output goes to stdout and stderr.
	// Ending ctx ends the script. The error is the script's exit status
	// (*ExitError) or the transport's failure.
	Exec(ctx context.Context, script string, stdin io.Reader, stdout, stderr io.Writer) error
	// Local says whether scripts run on this machine (named pipes can
	// then be opened directly on Windows).
	Local() bool
	String() string
}

// ExitError is a script that exited with a non-zero status.
type ExitError struct{ Status int }

func (e *ExitError) Error() string { return fmt.Sprintf("PowerShell exited with status %d", e.Status) }

// LocalRunner runs PowerShell on this machine.
type LocalRunner struct {
	// Pwsh is the program: a path, or a name looked up in PATH.
	Pwsh string
}

// DefaultPwsh is the PowerShell to run locally: pwsh (PowerShell 7) where
// it is installed, else Windows PowerShell.
func DefaultPwsh() string {
	if p, err := exec.LookPath("pwsh"); err == nil {
		return p
	}
	if runtime.GOOS == "windows" {
		return "powershell.exe"
	}
	return "pwsh"
}

func (r *LocalRunner) String() string { return "local " + r.Pwsh }

// Local implements Runner.
func (r *LocalRunner) Local() bool { return true }

// Exec implements Runner.
func (r *LocalRunner) Exec(ctx context.Context, script string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, r.Pwsh, PwshArgs()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A relay's grandchildren must not keep Wait waiting for output.
	cmd.WaitDelay = 5 * time.Second
	setProcAttr(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("no PowerShell %q here: run kitrun on the Windows host (in WSL: --backend-opt pwsh=powershell.exe), or drive the host over SSH (--backend-opt host=USER@HOST known-hosts=FILE key=FILE): %w", r.Pwsh, err)
		}
		return fmt.Errorf("starting %s: %w", r.Pwsh, err)
	}
	// Fed from a goroutine of our own: Wait then waits for the process,
	// not for a stdin that may never end (a relay's).
	go feed(in, script, stdin)
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return &ExitError{Status: ee.ExitCode()}
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// feed writes the script line, then stdin, and closes the script's input.
func feed(w io.WriteCloser, script string, stdin io.Reader) {
	defer w.Close()
	if _, err := w.Write(ScriptInput(script)); err != nil {
		return
	}
	if stdin != nil {
		io.Copy(w, stdin)
	}
}

// result is one script's outcome: the last JSON line it printed, its
// standard error, and how it ended.
type result struct {
	stdout, stderr bytes.Buffer
}

// tail is the last n bytes of b, for error messages.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}
