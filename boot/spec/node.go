package spec

// A thin layer over yaml.Node. Decoding into structs would lose positions
// and stop at the first problem; walking nodes keeps a line and column for
// every value and lets the parser report everything it finds.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// parser collects the errors of one spec file.
type parser struct {
	file string // as given by the caller, for messages
	dir  string // absolute directory of the spec, for host paths
	errs []*Error
	// claims maps guest paths to what the spec puts there, to catch two
	// things placed at one path.
	claims map[string]claim
}

func (p *parser) at(n *yaml.Node) Pos {
	return Pos{File: p.file, Line: n.Line, Column: max(n.Column, 1)}
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// typeError reports that the value at n is of the wrong kind.
func (p *parser) typeError(n *yaml.Node, label, expected string) {
	p.errorf(p.at(n), "%s must be %s, found %s", label, expected, DescribeNode(n))
}

// DescribeNode names what a node is, for type errors.
func DescribeNode(n *yaml.Node) string {
	switch {
	case IsNullNode(n):
		return "an empty value"
	case n.Kind == yaml.ScalarNode:
		return fmt.Sprintf("a scalar %q", n.Value)
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	return "a YAML document"
}

// IsNullNode says whether n is YAML null (empty, ~ or null).
func IsNullNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// ResolveNode follows an alias to its anchored node, so `*name` works wherever
// a value is expected. Positions then point at the anchor, which is where
// the value was written.
func ResolveNode(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// items returns the elements of a list value, checking that each is a
// mapping when mappings is set. An empty value is an empty list, so a
// section can be left empty (`services:`) without ceremony.
func (p *parser) items(n *yaml.Node, label string, mappings bool) []*yaml.Node {
	expected := "a list of strings"
	if mappings {
		expected = "a list of mappings"
	}
	if IsNullNode(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.typeError(n, label, expected)
		return nil
	}
	var out []*yaml.Node
	for _, item := range n.Content {
		item = ResolveNode(item)
		ok := item.Kind == yaml.MappingNode
		if !mappings {
			ok = item.Kind == yaml.ScalarNode && !IsNullNode(item)
		}
		if !ok {
			p.typeError(item, label, expected)
			continue
		}
		out = append(out, item)
	}
	return out
}

// entries calls fn for each key/value pair of a mapping node, in document
// order, skipping (and reporting) keys that are not scalars or repeat an
// earlier key: yaml.v3 only checks duplicates when decoding into Go values.
func (p *parser) entries(n *yaml.Node, in string, fn func(k, v *yaml.Node)) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ResolveNode(n.Content[i]), ResolveNode(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(p.at(k), "keys in %s must be plain names, found %s", in, DescribeNode(k))
			continue
		case k.ShortTag() == "!!merge":
			p.errorf(p.at(k), "merge keys (<<) are not supported in %s; write the keys out", in)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(p.at(k), "duplicate key %q in %s (first defined at %s); remove one", k.Value, in, p.at(first))
			continue
		}
		seen[k.Value] = k
		fn(k, v)
	}
}

// keySet describes the keys a mapping may contain.
type keySet struct {
	in    string   // what the mapping is, for messages: "service"
	valid []string // in the order the documentation lists them
	// hints are keys users plausibly write here that belong elsewhere,
	// mapped to what they should write instead.
	hints map[string]string
}

// fields is a mapping whose keys have been checked against a keySet.
// Unknown and duplicate keys are reported when it is built, so accessors
// deal only with values. Accessors report type errors and return ok=false
// for values that are absent or invalid; callers keep their defaults then.
type fields struct {
	p      *parser
	node   *yaml.Node
	in     string
	prefix string   // prepended to keys in messages: "ready."
	order  []string // present keys in document order
	keys   map[string]*yaml.Node
	values map[string]*yaml.Node
}

// fields checks the keys of mapping node n. The caller has checked that n
// is a mapping.
func (p *parser) fields(n *yaml.Node, ks keySet, prefix string) *fields {
	f := &fields{p: p, node: n, in: ks.in, prefix: prefix,
		keys: map[string]*yaml.Node{}, values: map[string]*yaml.Node{}}
	p.entries(n, ks.in, func(k, v *yaml.Node) {
		if !slices.Contains(ks.valid, k.Value) {
			p.unknownKey(k, ks)
			return
		}
		f.order = append(f.order, k.Value)
		f.keys[k.Value] = k
		f.values[k.Value] = v
	})
	return f
}

func (p *parser) unknownKey(k *yaml.Node, ks keySet) {
	msg := fmt.Sprintf("unknown key %q in %s;", k.Value, ks.in)
	candidates := slices.Concat(ks.valid, slices.Sorted(maps.Keys(ks.hints)))
	if s := Suggest(k.Value, candidates); s != "" {
		if hint, ok := ks.hints[s]; ok {
			s = hint
		}
		msg += fmt.Sprintf(" did you mean %q?", s)
	}
	p.errorf(p.at(k), "%s valid keys: %s", msg, strings.Join(ks.valid, ", "))
}

// forget drops a key the caller has fully handled, so later checks such
// as exactlyOne do not see it.
func (f *fields) forget(key string) {
	f.order = slices.DeleteFunc(f.order, func(k string) bool { return k == key })
	delete(f.keys, key)
	delete(f.values, key)
}

func (f *fields) has(key string) bool         { return f.values[key] != nil }
func (f *fields) value(key string) *yaml.Node { return f.values[key] }
func (f *fields) label(key string) string     { return f.prefix + key }
func (f *fields) pos(key string) Pos          { return f.p.at(f.values[key]) }
func (f *fields) keyPos(key string) Pos       { return f.p.at(f.keys[key]) }

// errorf reports a problem with the value of key, prefixed by its label.
func (f *fields) errorf(key, format string, args ...any) {
	f.p.errorf(f.pos(key), "%s: %s", f.label(key), fmt.Sprintf(format, args...))
}

// require reports each of keys that is missing, at the mapping.
func (f *fields) require(keys ...string) bool {
	ok := true
	for _, k := range keys {
		if !f.has(k) {
			f.p.errorf(f.p.at(f.node), "missing required key %q in %s", k, f.in)
			ok = false
		}
	}
	return ok
}

// exactlyOne returns which of the mutually exclusive keys is present. It
// reports none present as "<in> has no <noun>", and every key after the
// first as conflicting with the first; "" means nothing usable.
func (f *fields) exactlyOne(noun string, keys ...string) string {
	hint := "set exactly one of " + strings.Join(keys, ", ")
	var first string
	for _, k := range f.order {
		if !slices.Contains(keys, k) {
			continue
		}
		if first == "" {
			first = k
			continue
		}
		f.p.errorf(f.keyPos(k), "%s and %s are mutually exclusive; %s", f.label(first), f.label(k), hint)
	}
	if first == "" {
		f.p.errorf(f.p.at(f.node), "%s has no %s; %s", f.in, noun, hint)
	}
	return first
}

// scalar returns the value node of key if it is a scalar other than null.
func (f *fields) scalar(key, expected string) (*yaml.Node, bool) {
	n := f.value(key)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || IsNullNode(n) {
		f.p.typeError(n, f.label(key), expected)
		return nil, false
	}
	return n, true
}

// str returns a string value. Numbers and booleans are accepted as written,
// since `args: [8080]` or `cmdline: 1` plainly mean the text.
func (f *fields) str(key string) (string, bool) {
	n, ok := f.scalar(key, "a string")
	if !ok {
		return "", false
	}
	return n.Value, true
}

// integer returns an integer value within [lo, hi]; expected describes the
// valid values for messages ("a port number 1..65535").
func (f *fields) integer(key string, lo, hi int64, expected string) (int, bool) {
	n, ok := f.scalar(key, expected)
	if !ok {
		return 0, false
	}
	var v int64
	if n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		f.p.typeError(n, f.label(key), expected)
		return 0, false
	}
	if v < lo || v > hi {
		f.errorf(key, "%s is out of range; use %s", n.Value, expected)
		return 0, false
	}
	return int(v), true
}

func (f *fields) boolean(key string) (bool, bool) {
	n, ok := f.scalar(key, "true or false")
	if !ok {
		return false, false
	}
	var v bool
	if n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		f.p.typeError(n, f.label(key), "true or false")
		return false, false
	}
	return v, true
}

// duration returns a positive Go duration; every duration in a spec is a
// delay or a deadline, for which zero and negative values make no sense.
func (f *fields) duration(key string) (time.Duration, bool) {
	const hint = "use Go syntax like 500ms, 5s, 1m"
	n, ok := f.scalar(key, "a duration")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		f.errorf(key, "%q is not a duration; %s", n.Value, hint)
		return 0, false
	}
	if d <= 0 {
		f.errorf(key, "%q must be greater than zero; %s", n.Value, hint)
		return 0, false
	}
	return d, true
}

// strs returns a list of strings and the position of each item.
func (f *fields) strs(key string) ([]string, []Pos, bool) {
	n := f.value(key)
	if n == nil {
		return nil, nil, false
	}
	errs := len(f.p.errs)
	items := f.p.items(n, f.label(key), false)
	var out []string
	var pos []Pos
	for _, it := range items {
		out = append(out, it.Value)
		pos = append(pos, f.p.at(it))
	}
	return out, pos, len(f.p.errs) == errs
}

// enum returns a value that must be one of valid, suggesting the nearest
// valid value for typos.
func (f *fields) enum(key string, valid []string) (string, bool) {
	n, ok := f.scalar(key, "one of "+strings.Join(valid, ", "))
	if !ok {
		return "", false
	}
	if slices.Contains(valid, n.Value) {
		return n.Value, true
	}
	msg := fmt.Sprintf("%q is not valid;", n.Value)
	if s := Suggest(n.Value, valid); s != "" {
		msg += fmt.Sprintf(" did you mean %q?", s)
	}
	f.errorf(key, "%s valid values: %s", msg, strings.Join(valid, ", "))
	return "", false
}

// mapping returns the value of key as fields if it is a mapping.
func (f *fields) mapping(key string, ks keySet) (*fields, bool) {
	n := f.value(key)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		f.p.typeError(n, f.label(key), "a mapping")
		return nil, false
	}
	return f.p.fields(n, ks, f.label(key)+"."), true
}
