package termsafe

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStrict(t *testing.T) {
	cases := map[string]string{
		"plain text\n":                                  "plain text\n",
		"\x1bcSeaBIOS (version 1.16)\r\n":               "SeaBIOS (version 1.16)\r\n",
		"\x1b[2J\x1b[3J\x1b[Hcleared?\n":                "cleared?\n",
		"\x1b]0;pwned title\x07after\n":                 "after\n",
		"\x1b]52;c;cHduZWQ=\x1b\\clip\n":                "clip\n",
		"\x1bP+q544e\x1b\\dcs\n":                        "dcs\n",
		"\x1b[6nreport?\n":                              "report?\n",
		"\x1b[31mred\x1b[0m plain\n":                    "\x1b[31mred\x1b[0m plain\n",
		"\x1b[?1049halt screen\n":                       "alt screen\n",
		"tab\there\x07bell\n":                           "tab\therebell\n",
		"safe\rEVIL\n":                                  "safeEVIL\n",
		"\xc2\x9b2Jc1 csi\n":                            "2Jc1 csi\n",
		"bad \xff utf8\n":                               "bad \uFFFD utf8\n",
		"ünïcödé ✓\n":                                   "ünïcödé ✓\n",
		"\x1b[1;32;40mbold\x1b[m\n":                     "\x1b[1;32;40mbold\x1b[m\n",
		"\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\\n": "link\n",
	}
	for in, want := range cases {
		if got := String(in, Strict); got != want {
			t.Errorf("Strict(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInteractiveKeepsLineEditing(t *testing.T) {
	in := "$ ls\x08\x08\x1b[K\x1b[2D\x1b[Cx\r\x1b[2J\x1b[3J\x1bc\x1b[6n"
	want := "$ ls\x08\x08\x1b[K\x1b[2D\x1b[Cx\r\x1b[2J"
	if got := String(in, Interactive); got != want {
		t.Errorf("Interactive = %q, want %q", got, want)
	}
}

// TestSplitWrites: sequences split across writes at every point filter as
// the whole does.
func TestSplitWrites(t *testing.T) {
	in := "a\x1b]0;title\x07b\x1b[31mc\x1b[0m\xe2\x9c\x93d\x1bce\r\nf"
	want := String(in, Strict)
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			var b bytes.Buffer
			w := New(&b, Strict)
			w.Write([]byte(in[:i]))
			w.Write([]byte(in[i:j]))
			w.Write([]byte(in[j:]))
			w.Flush()
			if b.String() != want {
				t.Fatalf("split at %d,%d: %q, want %q", i, j, b.String(), want)
			}
		}
	}
}

// FuzzStrict: whatever a guest prints, what reaches the terminal is valid
// UTF-8 with no escape but SGR and no control but \t, \n and \r\n.
func FuzzStrict(f *testing.F) {
	for _, s := range []string{"\x1bc", "\x1b]0;x\x07", "\x1b[31m", "\xc2\x9b", "\r\n", "a\rb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := String(string(in), Strict)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q: %q", in, out)
		}
		for i := 0; i < len(out); i++ {
			c := out[i]
			switch {
			case c == 0x1b:
				end := strings.IndexByte(out[i:], 'm')
				if end < 0 || out[i+1] != '[' || strings.ContainsAny(out[i+2:i+end], "?>=<\x1b") {
					t.Fatalf("escape other than SGR out of %q: %q", in, out)
				}
			case c == '\r':
				if i+1 >= len(out) || out[i+1] != '\n' {
					t.Fatalf("lone \\r out of %q: %q", in, out)
				}
			case c < 0x20 && c != '\n' && c != '\t', c == 0x7f:
				t.Fatalf("control %#x out of %q: %q", c, in, out)
			}
		}
	})
}
