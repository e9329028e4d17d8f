//go:build linux

package hypervfake

import (
	"fmt"
	"strings"
)

// The fake runs the scripts kitrun generates, not PowerShell at large: one
// statement per line, either `$step = '…'` or a pipeline of commands whose
// arguments are -Name, -Name value, -Name:value, with values that are
// single-quoted strings ('' is a quote), numbers, barewords, $true/$false,
// or a parenthesised command. Anything else is an error, so a template
// change the fake does not understand fails the tests instead of passing
// unseen.

// command is one parsed command.
type command struct {
	name   string
	params map[string]value
	order  []string
}

// value is an argument: a string, or a nested command (its result is
// computed when the outer command runs).
type value struct {
	s      string
	nested *command
	isSw   bool // a switch parameter (-TurnOff)
}

func (c *command) String() string {
	var b strings.Builder
	b.WriteString(c.name)
	for _, k := range c.order {
		v := c.params[k]
		b.WriteString(" -" + k)
		switch {
		case v.isSw:
		case v.nested != nil:
			b.WriteString(" (" + v.nested.String() + ")")
		default:
			b.WriteString(" " + v.s)
		}
	}
	return b.String()
}

type lexer struct {
	s   string
	pos int
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.s) && (l.s[l.pos] == ' ' || l.s[l.pos] == '\t') {
		l.pos++
	}
}

func (l *lexer) eof() bool { l.skipSpace(); return l.pos >= len(l.s) }

func (l *lexer) peek() byte {
	l.skipSpace()
	if l.pos >= len(l.s) {
		return 0
	}
	return l.s[l.pos]
}

// quoted reads a single-quoted string.
func (l *lexer) quoted() (string, error) {
	l.pos++ // the opening quote
	var b strings.Builder
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		if c == '\'' {
			if l.pos+1 < len(l.s) && l.s[l.pos+1] == '\'' {
				b.WriteByte('\'')
				l.pos += 2
				continue
			}
			l.pos++
			return b.String(), nil
		}
		b.WriteByte(c)
		l.pos++
	}
	return "", fmt.Errorf("unterminated string")
}

// word reads up to a space, a pipe or a parenthesis.
func (l *lexer) word() string {
	l.skipSpace()
	start := l.pos
	for l.pos < len(l.s) && !strings.ContainsRune(" \t|()", rune(l.s[l.pos])) {
		l.pos++
	}
	return l.s[start:l.pos]
}

// parseLine parses a statement: an assignment to $step, or a pipeline.
func parseLine(line string) (step *string, pipeline []*command, err error) {
	if rest, ok := strings.CutPrefix(line, "$step = "); ok {
		l := &lexer{s: rest}
		if l.peek() != '\'' {
			return nil, nil, fmt.Errorf("$step takes a quoted string")
		}
		s, err := l.quoted()
		if err != nil {
			return nil, nil, err
		}
		if !l.eof() {
			return nil, nil, fmt.Errorf("text after the string")
		}
		return &s, nil, nil
	}
	l := &lexer{s: line}
	for {
		c, err := l.command()
		if err != nil {
			return nil, nil, err
		}
		pipeline = append(pipeline, c)
		if l.eof() {
			return nil, pipeline, nil
		}
		if l.peek() != '|' {
			return nil, nil, fmt.Errorf("unexpected %q", l.s[l.pos:])
		}
		l.pos++
	}
}

func (l *lexer) command() (*command, error) {
	name := l.word()
	if name == "" || strings.HasPrefix(name, "$") || strings.HasPrefix(name, "-") {
		return nil, fmt.Errorf("expected a command, got %q", l.s[l.pos:])
	}
	c := &command{name: name, params: map[string]value{}}
	for {
		p := l.peek()
		if p == 0 || p == '|' || p == ')' {
			return c, nil
		}
		if p != '-' {
			return nil, fmt.Errorf("%s: positional arguments are not used by kitrun (at %q)", name, l.s[l.pos:])
		}
		w := l.word()
		key, colonVal, hasColon := strings.Cut(w[1:], ":")
		if key == "" {
			return nil, fmt.Errorf("%s: empty parameter name", name)
		}
		if _, dup := c.params[key]; dup {
			return nil, fmt.Errorf("%s: -%s given twice", name, key)
		}
		var v value
		switch {
		case hasColon:
			v.s = colonVal
		default:
			switch n := l.peek(); {
			case n == 0 || n == '|' || n == ')' || n == '-':
				v.isSw = true
			case n == '\'':
				s, err := l.quoted()
				if err != nil {
					return nil, fmt.Errorf("%s -%s: %v", name, key, err)
				}
				v.s = s
			case n == '(':
				l.pos++
				inner, err := l.command()
				if err != nil {
					return nil, err
				}
				if l.peek() != ')' {
					return nil, fmt.Errorf("%s -%s: missing )", name, key)
				}
				l.pos++
				v.nested = inner
			default:
				v.s = l.word()
			}
		}
		c.params[key] = v
		c.order = append(c.order, key)
	}
}
