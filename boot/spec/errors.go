package spec

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// String formats a position the way compilers do (FILE:LINE:COLUMN), so
// editors and terminals can jump to it.
func (p Pos) String() string {
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Error is one problem in a spec file. Msg says what is wrong and what
// would be valid.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	return e.Pos.String() + ": " + e.Msg
}

// Errors is every problem found in a spec file, sorted by position, so a
// user fixes them all in one round instead of one per build.
// errors.As reaches the individual *Error values through Unwrap.
type Errors struct {
	List []*Error
}

// Error puts one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, err := range e.List {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, err := range e.List {
		errs[i] = err
	}
	return errs
}

// NewErrors sorts errs by position (stable, so problems found at the same
// place keep the order they were found in) and wraps them, or returns nil.
func NewErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sorted := slices.Clone(errs)
	slices.SortStableFunc(sorted, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
		)
	})
	return &Errors{List: sorted}
}

// yamlLine matches the position prefix yaml.v3 puts in syntax errors. The
// library reports no column, so syntax errors point at column 1.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// SyntaxError converts an error from the YAML library to an *Error.
func SyntaxError(file string, err error) *Error {
	pos := Pos{File: file, Line: 1, Column: 1}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return &Error{Pos: pos, Msg: "invalid YAML: " + msg}
}
