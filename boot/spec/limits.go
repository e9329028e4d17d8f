package spec

// Bounds on YAML input, shared by every kitrun file format built on YAML
// (specs here, test.yml in testcases). A YAML alias repeats a whole subtree
// for the price of a few bytes, so a small file can stand for billions of
// values; the node API does not expand aliases, but any walk over the tree
// does. The document is therefore measured once, right after decoding, with
// every alias counted at the size of what it names, and refused before any
// walk if it is too big.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

const (
	// MaxFileBytes is the largest YAML file kitrun reads. Real specs are a
	// few KiB; large file contents belong in a host file named by source:.
	MaxFileBytes = 1 << 20
	// MaxValues is the most YAML values (scalars, keys, lists and mappings)
	// a document may hold once every alias is replaced by what it names.
	MaxValues = 100_000
	// MaxTextBytes is the most scalar text a document may hold once every
	// alias is expanded: a 1 MiB string repeated by aliases is still
	// written out once per alias by whatever reads it.
	MaxTextBytes = 4 << 20
)

// ReadYAMLFile reads a YAML file of at most MaxFileBytes. A larger file
// gives an *Errors naming the limit.
func ReadYAMLFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if e := checkFileSize(path, data); e != nil {
		return nil, NewErrors([]*Error{e})
	}
	return data, nil
}

func checkFileSize(file string, data []byte) *Error {
	if len(data) <= MaxFileBytes {
		return nil
	}
	// Point at the first byte past the limit, so the user sees where.
	head := data[:MaxFileBytes]
	line := bytes.Count(head, []byte("\n")) + 1
	col := MaxFileBytes - bytes.LastIndexByte(head, '\n')
	return &Error{Pos: Pos{File: file, Line: line, Column: col},
		Msg: fmt.Sprintf("file is larger than the %d KiB limit for kitrun's YAML files; move large contents to a host file (files: source:)", MaxFileBytes>>10)}
}

// DecodeYAML decodes data, the contents of file, into the root node of its
// one YAML document, within MaxFileBytes, MaxValues and MaxTextBytes.
// Empty input (or only comments) gives a nil root and no errors. A second
// document is an error, since a single decode would silently ignore it.
func DecodeYAML(file string, data []byte) (*yaml.Node, []*Error) {
	if e := checkFileSize(file, data); e != nil {
		return nil, []*Error{e}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, []*Error{SyntaxError(file, err)}
	}
	var errs []*Error
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		errs = append(errs, &Error{Pos: Pos{File: file, Line: extra.Line, Column: max(extra.Column, 1)},
			Msg: "a kitrun YAML file holds one document; remove this second one or move it to its own file"})
	case !errors.Is(err, io.EOF):
		errs = append(errs, SyntaxError(file, err))
	}
	if len(doc.Content) == 0 {
		return nil, errs
	}
	if e := checkExpansion(file, &doc); e != nil {
		return nil, append(errs, e)
	}
	return doc.Content[0], errs
}

// expansion measures a node graph with aliases expanded. Sizes are
// memoised per node, so the measurement costs one visit per node however
// often it is aliased, and saturate just past the limits, so they cannot
// overflow however deep aliases nest.
type expansion struct {
	file  string
	sizes map[*yaml.Node]size
	busy  map[*yaml.Node]bool // on the current path: an alias to one is a cycle
	err   *Error
}

type size struct{ values, text int }

func (s size) add(o size) size {
	return size{min(s.values+o.values, MaxValues+1), min(s.text+o.text, MaxTextBytes+1)}
}

func (s size) over() bool { return s.values > MaxValues || s.text > MaxTextBytes }

// checkExpansion reports the first place where the document, expanded,
// exceeds a limit, or an alias that names a node containing it.
func checkExpansion(file string, doc *yaml.Node) *Error {
	x := &expansion{file: file, sizes: map[*yaml.Node]size{}, busy: map[*yaml.Node]bool{}}
	var total size
	x.walk(doc, &total)
	return x.err
}

// walk adds n's expanded size to *total, in document order, and stops at
// the first node that takes the total over a limit.
func (x *expansion) walk(n *yaml.Node, total *size) {
	if x.err != nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		s := x.sizeOf(n)
		if x.err != nil {
			return
		}
		if *total = total.add(s); total.over() {
			x.fail(n, fmt.Sprintf("alias *%s names %s (anchored at line %d), which takes the document past", n.Value, describeSize(s), n.Alias.Line))
		}
		return
	}
	*total = total.add(size{1, len(n.Value)})
	if total.over() {
		x.fail(n, "the document grows past")
		return
	}
	x.busy[n] = true
	for _, c := range n.Content {
		x.walk(c, total)
	}
	delete(x.busy, n)
}

// sizeOf is the expanded size of the node an alias names.
func (x *expansion) sizeOf(alias *yaml.Node) size {
	target := alias.Alias
	if target == nil {
		return size{1, 0}
	}
	if x.busy[target] {
		x.err = &Error{Pos: x.at(alias), Msg: fmt.Sprintf("alias *%s names a value that contains the alias itself, which would repeat forever; point it at a value defined before and outside it", alias.Value)}
		return size{}
	}
	if s, ok := x.sizes[target]; ok {
		return s
	}
	var s size
	x.measure(target, &s)
	x.sizes[target] = s
	return s
}

// measure is walk without position reporting: it adds n's expanded size to
// *s, stopping early once a limit is passed.
func (x *expansion) measure(n *yaml.Node, s *size) {
	if x.err != nil || s.over() {
		return
	}
	if n.Kind == yaml.AliasNode {
		*s = s.add(x.sizeOf(n))
		return
	}
	*s = s.add(size{1, len(n.Value)})
	x.busy[n] = true
	for _, c := range n.Content {
		x.measure(c, s)
	}
	delete(x.busy, n)
}

func (x *expansion) at(n *yaml.Node) Pos {
	return Pos{File: x.file, Line: max(n.Line, 1), Column: max(n.Column, 1)}
}

func (x *expansion) fail(n *yaml.Node, what string) {
	x.err = &Error{Pos: x.at(n), Msg: fmt.Sprintf("%s kitrun's limit of %d values and %d KiB of text with aliases expanded; write repeated parts once, or move data to a host file",
		what, MaxValues, MaxTextBytes>>10)}
}

func describeSize(s size) string {
	if s.over() {
		return "more than the limit on its own"
	}
	return fmt.Sprintf("%d values and %d bytes of text", s.values, s.text)
}
