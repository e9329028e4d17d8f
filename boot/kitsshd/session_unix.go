//go:build unix

package kitsshd

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// What runs a guest's commands: process groups, ptys and wait statuses.
// kitsshd serves guests, which are Linux; the rest of the package also
// builds elsewhere because the host's fake backend serves SSH with it
// (Config.Exec), which needs none of this.

type winsize = unix.Winsize

// exitOf is how a reaped command ended.
func exitOf(ps *os.ProcessState) exitInfo {
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return exitInfo{status: 128 + int(ws.Signal()), signal: strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG"), core: ws.CoreDump()}
	}
	return exitInfo{status: ws.ExitStatus()}
}

// signalGroup sends the signal named as in SSH ("TERM", "HUP") to process
// group pgid.
func signalGroup(pgid int, name string) bool {
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return false
	}
	return unix.Kill(-pgid, sig) == nil
}

// runPipes runs cmd in its own process group with the channel as stdin,
// stdout and stderr.
func (ss *session) runPipes(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = ss.ch
	cmd.Stderr = ss.ch.Stderr()
	// Wait for output for a while after exit, not for ever: a background
	// process may hold it open.
	cmd.WaitDelay = outputGrace
	if err := ss.start(cmd, nil); err != nil {
		return err
	}
	go func() {
		io.Copy(stdin, ss.ch)
		stdin.Close()
	}()
	err = cmd.Wait()
	ss.stopped()
	return err
}

// runPty runs cmd as a session leader on a new pty whose master is copied
// to and from the channel.
func (ss *session) runPty(cmd *exec.Cmd) error {
	ptmx, tty, err := openPty()
	if err != nil {
		return fmt.Errorf("allocating a pty: %w", err)
	}
	defer ptmx.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = ss.start(cmd, ptmx)
	tty.Close()
	if err != nil {
		return err
	}
	go io.Copy(ptmx, ss.ch)
	out := make(chan struct{})
	go func() {
		io.Copy(ss.ch, ptmx) // ends with EIO once no process holds the tty
		close(out)
	}()
	err = cmd.Wait()
	ss.stopped()
	select {
	case <-out:
	case <-time.After(outputGrace):
	}
	return err
}

func newWinsize(cols, rows, xpix, ypix uint32) *winsize {
	return &unix.Winsize{Col: uint16(cols), Row: uint16(rows), Xpixel: uint16(xpix), Ypixel: uint16(ypix)}
}

// openPty opens a pty whose master is non-blocking, so that closing it
// ends a pending read (pty.Open leaves it blocking).
func openPty() (ptmx, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err == nil {
		unix.CloseOnExec(fd)
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		tty.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}

func setWinsize(f *os.File, w *winsize) {
	if w == nil {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, w) })
	}
}
