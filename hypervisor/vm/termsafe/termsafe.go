// Package termsafe neutralises guest text on its way to a user's terminal.
// A guest's console carries whatever its firmware and programs print:
// SeaBIOS resets the terminal (ESC c), a program can clear the scrollback,
// set the window title, write to the clipboard (OSC 52), or ask the
// terminal to answer, which types into the user's shell. Log files keep the
// raw bytes; what reaches a terminal goes through a Writer.
//
// Strict keeps text, newlines, tabs and colour (SGR); Interactive, for an
// attached console where a guest shell edits its line, also keeps cursor
// movement and erasing within the screen. Both drop, whole, every string
// sequence (OSC, DCS, SOS, PM, APC), every sequence that resets, reports or
// reconfigures the terminal, other C0 and C1 control characters, and
// replace invalid UTF-8.
package termsafe

import (
	"io"
	"unicode/utf8"
)

// Policy says which sequences survive.
type Policy int

const (
	// Strict: text, \n, \t, \r before \n, and SGR (colours).
	Strict Policy = iota
	// Interactive: Strict, plus \r, backspace, and cursor movement and
	// erasing within the screen (CSI A B C D E F G H J K P X d f, never
	// "3J", which erases the scrollback).
	Interactive
)

// Writer filters what it is given and writes the rest to W. Sequences may
// be split across writes.
type Writer struct {
	W      io.Writer
	Policy Policy

	state   int
	seq     []byte // the CSI sequence being read (bounded)
	utf     []byte // an incomplete UTF-8 sequence
	pendCR  bool   // a \r that may turn out to end a line
	scratch []byte
}

// New returns a Writer with policy p over w.
func New(w io.Writer, p Policy) *Writer { return &Writer{W: w, Policy: p} }

const (
	sText = iota
	sEsc
	sCSI
	sString    // OSC, DCS, SOS, PM, APC: until ST (ESC \) or BEL
	sStringEsc // an ESC inside a string: ST if followed by '\'
)

// maxCSI bounds a CSI sequence; a longer one is dropped.
const maxCSI = 64

// Write implements io.Writer. It reports len(p) when the filtered bytes
// were written.
func (w *Writer) Write(p []byte) (int, error) {
	out := w.scratch[:0]
	for _, c := range p {
		out = w.byte(out, c)
	}
	w.scratch = out[:0]
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := w.W.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *Writer) byte(out []byte, c byte) []byte {
	switch w.state {
	case sEsc:
		switch c {
		case '[':
			w.state, w.seq = sCSI, w.seq[:0]
		case ']', 'P', 'X', '^', '_':
			w.state = sString
		default:
			w.state = sText // two-byte sequences (ESC c, ESC 7, …): dropped
		}
		return out
	case sCSI:
		if c >= 0x40 && c <= 0x7e { // final byte
			w.state = sText
			if w.keepCSI(c) {
				out = append(out, 0x1b, '[')
				out = append(out, w.seq...)
				out = append(out, c)
			}
			return out
		}
		if c < 0x20 || c > 0x3f {
			// Neither a parameter, an intermediate nor a final byte: a
			// broken sequence. It is dropped, and this byte with it.
			w.state = sText
			return out
		}
		if len(w.seq) >= maxCSI {
			w.seq[0] = 0xff // too long: kept out whatever its final byte
			return out
		}
		w.seq = append(w.seq, c)
		return out
	case sString:
		switch c {
		case 0x07:
			w.state = sText
		case 0x1b:
			w.state = sStringEsc
		}
		return out
	case sStringEsc:
		if c == '\\' {
			w.state = sText
		} else {
			w.state = sString
		}
		return out
	}
	// Text.
	if len(w.utf) > 0 || c >= 0x80 {
		return w.utf8Byte(out, c)
	}
	if w.pendCR {
		w.pendCR = false
		if c == '\n' {
			return append(out, '\r', '\n')
		}
		if w.Policy == Interactive {
			out = append(out, '\r')
		}
	}
	switch {
	case c == 0x1b:
		w.state = sEsc
	case c == '\r':
		w.pendCR = true
	case c == '\n' || c == '\t':
		out = append(out, c)
	case c == 0x08 && w.Policy == Interactive:
		out = append(out, c)
	case c < 0x20 || c == 0x7f:
		// Other controls (BEL, SI/SO charset switches, …): dropped.
	default:
		out = append(out, c)
	}
	return out
}

// keepCSI says whether a complete CSI sequence (parameters in w.seq) may
// reach the terminal.
func (w *Writer) keepCSI(final byte) bool {
	for _, c := range w.seq {
		if c < '0' || c > ';' { // private markers (?, >, =), intermediates, poison
			return false
		}
	}
	if final == 'm' {
		return true
	}
	if w.Policy != Interactive {
		return false
	}
	switch final {
	case 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'K', 'P', 'X', 'd', 'f':
		return true
	case 'J':
		return string(w.seq) != "3" // 3J erases the scrollback
	}
	return false
}

// utf8Byte collects a multi-byte UTF-8 character; C1 controls (U+0080 to
// U+009F) and invalid bytes do not reach the terminal as such.
func (w *Writer) utf8Byte(out []byte, c byte) []byte {
	w.utf = append(w.utf, c)
	if !utf8.FullRune(w.utf) {
		if len(w.utf) < utf8.UTFMax {
			return out
		}
	}
	r, size := utf8.DecodeRune(w.utf)
	rest := append([]byte(nil), w.utf[size:]...)
	w.utf = w.utf[:0]
	switch {
	case r == utf8.RuneError && size <= 1:
		out = append(out, "\uFFFD"...)
	case r >= 0x80 && r <= 0x9f:
		// A C1 control: dropped.
	default:
		out = utf8.AppendRune(out, r)
	}
	for _, b := range rest {
		out = w.byte(out, b)
	}
	return out
}

// String filters s by policy p.
func String(s string, p Policy) string {
	var b sink
	w := New(&b, p)
	w.Write([]byte(s))
	w.Flush()
	return string(b)
}

// Flush writes what a Writer holds back: a final \r, or an incomplete
// UTF-8 sequence (as U+FFFD).
func (w *Writer) Flush() error {
	var out []byte
	if w.pendCR && w.Policy == Interactive {
		out = append(out, '\r')
	}
	w.pendCR = false
	if len(w.utf) > 0 {
		out = append(out, "\uFFFD"...)
		w.utf = w.utf[:0]
	}
	if len(out) == 0 {
		return nil
	}
	_, err := w.W.Write(out)
	return err
}

type sink []byte

func (s *sink) Write(p []byte) (int, error) {
	*s = append(*s, p...)
	return len(p), nil
}
