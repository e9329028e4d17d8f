package cmdutil

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/kitrun/kitrun/hypervisor/vm/termsafe"
)

// IsTerminal says whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// GuestText returns the writer guest text (console output, console lines
// in an error) goes through on its way to w: a filter by policy p when w is
// a terminal (a guest must not reset it, clear its scrollback or type into
// the user's shell), w itself otherwise (files and pipes get the raw
// bytes).
func GuestText(w io.Writer, p termsafe.Policy) io.Writer {
	if IsTerminal(w) {
		return termsafe.New(w, p)
	}
	return w
}

// MakeRaw puts a terminal in raw mode; it fails on anything else.
func MakeRaw(fd int) (func(), error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	old := *t
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, &old) }, nil
}
