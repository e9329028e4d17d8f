package kitsshd

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "   \t ", want: nil},
		{in: "kitrun-ping", want: []string{"kitrun-ping"}},
		{in: "  demo  check\t/etc/hostname  x ", want: []string{"demo", "check", "/etc/hostname", "x"}},
		{in: `echo 'a  b' "c  d"`, want: []string{"echo", "a  b", "c  d"}},
		{in: `a'b'"c"d`, want: []string{"abcd"}},
		{in: `'' ""`, want: []string{"", ""}},
		{in: `'it'\''s'`, want: []string{"it's"}},
		{in: `"a \"q\" \\ \$x \n"`, want: []string{`a "q" \ $x \n`}},
		{in: `a\ b \'c`, want: []string{"a b", "'c"}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: `'$(x) | y'`, want: []string{"$(x) | y"}},
		{in: `*.txt ~ a=b`, want: []string{"*.txt", "~", "a=b"}},
		{in: `trailing\`, want: []string{`trailing\`}},
		{in: `'open`, err: "unterminated ' quote"},
		{in: `"open`, err: `unterminated " quote`},
		{in: `a | b`, err: `"|" needs a shell`},
		{in: `a > f`, err: `">" needs a shell`},
		{in: `a; b`, err: `";" needs a shell`},
		{in: `echo $HOME`, err: `"$" needs a shell`},
		{in: "echo `x`", err: "\"`\" needs a shell"},
	} {
		got, err := Split(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Split(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"plain", "/etc/host name", "", "it's", `a"b\c`, "$x|y;z", "tab\there", "new\nline"} {
		got, err := Split(Quote(s))
		if err != nil || len(got) != 1 || got[0] != s {
			t.Errorf("Split(Quote(%q)) = %q (%s), %v", s, got, Quote(s), err)
		}
	}
	if q := Quote("/etc/hostname"); q != "/etc/hostname" {
		t.Errorf("Quote quoted a plain path: %s", q)
	}
}
