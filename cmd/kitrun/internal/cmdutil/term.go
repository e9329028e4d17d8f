package cmdutil

import (
	"io"
	"os"

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
// golang.org/x/term does it on every OS kitrun runs on (termios on Linux
// and macOS, console modes on Windows).
func MakeRaw(fd int) (func(), error) {
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	return func() { term.Restore(fd, old) }, nil
}
