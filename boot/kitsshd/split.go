package kitsshd

import (
	"errors"
	"fmt"
	"strings"
)

// Split breaks a command line into words the way a POSIX shell does for a
// simple command, without any expansion: blanks separate words, '…' quotes
// literally, "…" quotes with \" \\ \$ \` as the only escapes, and a
// backslash outside quotes takes the next character literally. It is used
// when the image has no shell, and to recognise the built-in commands.
//
// Shell syntax that would need a shell (pipes, lists, redirections,
// substitutions, grouping) is an error when unquoted, rather than being
// passed on as a strange argument. Globs and ~ are not expanded.
func Split(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' { // line continuation
						continue
					}
				}
				w.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errors.New(`unterminated " quote`)
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' { // backslash-newline joins lines
					w.WriteByte(s[i])
					inWord = true
				}
			} else {
				w.WriteByte(c)
				inWord = true
			}
		case strings.IndexByte("|&;<>()$`", c) >= 0:
			return nil, fmt.Errorf("%q needs a shell, and this image has none; run one program with its arguments, or add a shell (e.g. busybox) to the spec", string(c))
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// Quote renders s as one word for Split (and for a POSIX shell).
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
