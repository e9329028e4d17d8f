package testcases

// A small walker over yaml.v3 nodes, in the style of boot/spec: every value
// keeps its line and column, and every problem is collected (not just the
// first) as FILE:LINE:COLUMN: what is wrong; what would be valid.

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kitrun/kitrun/boot/spec"
)

type yparser struct {
	file string
	errs []*spec.Error
}

func (p *yparser) at(n *yaml.Node) spec.Pos {
	return spec.Pos{File: p.file, Line: max(n.Line, 1), Column: max(n.Column, 1)}
}

func (p *yparser) errorf(pos spec.Pos, format string, args ...any) {
	p.errs = append(p.errs, &spec.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// err returns every problem found, sorted by position, or nil.
func (p *yparser) err() error { return spec.NewErrors(p.errs) }

// document decodes data into its root node, which must be a mapping.
// An empty document is an empty mapping. spec.DecodeYAML bounds the file
// size and the expansion of aliases, as for specs.
func (p *yparser) document(data []byte, what string) *yaml.Node {
	root, errs := spec.DecodeYAML(p.file, data)
	p.errs = append(p.errs, errs...)
	if root == nil {
		if len(errs) > 0 {
			return nil
		}
		return &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: 1}
	}
	root = spec.ResolveNode(root)
	if root.Kind != yaml.MappingNode {
		p.typeError(root, what, "a mapping")
		return nil
	}
	return root
}

func (p *yparser) typeError(n *yaml.Node, label, expected string) {
	p.errorf(p.at(n), "%s must be %s, found %s", label, expected, spec.DescribeNode(n))
}

// entry is one key/value pair of a mapping.
type entry struct {
	key, val *yaml.Node
}

// pairs returns the entries of mapping n in document order, reporting
// non-scalar, merge and duplicate keys.
func (p *yparser) pairs(n *yaml.Node, in string) []entry {
	var out []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := spec.ResolveNode(n.Content[i]), spec.ResolveNode(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(p.at(k), "keys in %s must be plain names, found %s", in, spec.DescribeNode(k))
			continue
		case k.ShortTag() == "!!merge":
			p.errorf(p.at(k), "merge keys (<<) are not supported in %s; write the keys out", in)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(p.at(k), "duplicate key %q in %s (first at line %d); remove one", k.Value, in, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, v})
	}
	return out
}

// unknownKey reports key k, which is not one of valid, with the nearest
// valid key as a suggestion.
func (p *yparser) unknownKey(k *yaml.Node, in string, valid []string) {
	msg := fmt.Sprintf("unknown key %q in %s;", k.Value, in)
	if s := spec.Suggest(k.Value, valid); s != "" {
		msg += fmt.Sprintf(" did you mean %q?", s)
	}
	p.errorf(p.at(k), "%s valid keys: %s", msg, strings.Join(valid, ", "))
}

// Typed readers. Each reports a type error at the value and returns ok=false.

func (p *yparser) scalar(n *yaml.Node, label, expected string) bool {
	if n.Kind != yaml.ScalarNode || spec.IsNullNode(n) {
		p.typeError(n, label, expected)
		return false
	}
	return true
}

func (p *yparser) str(n *yaml.Node, label string) (string, bool) {
	if !p.scalar(n, label, "a string") {
		return "", false
	}
	return n.Value, true
}

func (p *yparser) boolean(n *yaml.Node, label string) (bool, bool) {
	if !p.scalar(n, label, "true or false") {
		return false, false
	}
	var v bool
	if n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		p.typeError(n, label, "true or false")
		return false, false
	}
	return v, true
}

func (p *yparser) integer(n *yaml.Node, label string, lo, hi int64, expected string) (int64, bool) {
	if !p.scalar(n, label, expected) {
		return 0, false
	}
	var v int64
	if n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.typeError(n, label, expected)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(p.at(n), "%s: %s is out of range; use %s", label, n.Value, expected)
		return 0, false
	}
	return v, true
}

func (p *yparser) duration(n *yaml.Node, label string) (time.Duration, bool) {
	const hint = "use Go syntax like 500ms, 10s, 2m"
	if !p.scalar(n, label, "a duration") {
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.errorf(p.at(n), "%s: %q is not a duration; %s", label, n.Value, hint)
		return 0, false
	}
	if d <= 0 {
		p.errorf(p.at(n), "%s: %q must be greater than zero; %s", label, n.Value, hint)
		return 0, false
	}
	return d, true
}

func (p *yparser) regexp(n *yaml.Node, label string) (*regexp.Regexp, bool) {
	s, ok := p.str(n, label)
	if !ok {
		return nil, false
	}
	re, err := regexp.Compile(s)
	if err != nil {
		p.errorf(p.at(n), "%s: %q is not a valid Go regular expression: %v", label, s, unwrapRegexpErr(err))
		return nil, false
	}
	return re, true
}

func unwrapRegexpErr(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// strs reads a list of strings; a single scalar counts as a list of one
// (`services_ready: hello`).
func (p *yparser) strs(n *yaml.Node, label string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode && !spec.IsNullNode(n) {
		return []string{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.typeError(n, label, "a name or a non-empty list of names")
		return nil, false
	}
	var out []string
	ok := true
	for _, it := range n.Content {
		it = spec.ResolveNode(it)
		if it.Kind != yaml.ScalarNode || spec.IsNullNode(it) {
			p.typeError(it, label, "a list of strings")
			ok = false
			continue
		}
		out = append(out, it.Value)
	}
	return out, ok
}

// list returns the items of a sequence node.
func (p *yparser) list(n *yaml.Node, label, expected string) ([]*yaml.Node, bool) {
	if spec.IsNullNode(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.typeError(n, label, expected)
		return nil, false
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		out[i] = spec.ResolveNode(it)
	}
	return out, true
}
