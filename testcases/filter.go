package testcases

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// LabelFilter selects tests by label: every positive label is required,
// any negated one (!x) excludes.
type LabelFilter struct {
	Want []string
	Not  []string
}

// ParseLabelFilter reads label expressions such as "network,!slow"; several
// expressions add up.
func ParseLabelFilter(exprs ...string) (LabelFilter, error) {
	var f LabelFilter
	for _, e := range exprs {
		for _, l := range strings.Split(e, ",") {
			l = strings.TrimSpace(l)
			neg := strings.HasPrefix(l, "!")
			l = strings.TrimPrefix(l, "!")
			if l == "" {
				continue
			}
			if !labelRule.MatchString(l) {
				return f, fmt.Errorf("bad label %q in %q; use letters, digits, '_', '.' and '-', with ! to exclude", l, e)
			}
			if neg {
				f.Not = append(f.Not, l)
			} else {
				f.Want = append(f.Want, l)
			}
		}
	}
	return f, nil
}

// Match says whether a test with labels is selected.
func (f LabelFilter) Match(labels []string) bool {
	for _, w := range f.Want {
		if !slices.Contains(labels, w) {
			return false
		}
	}
	for _, n := range f.Not {
		if slices.Contains(labels, n) {
			return false
		}
	}
	return true
}

// NameFilter selects tests by name with path.Match globs: a test is
// selected when any pattern matches its name or one of its enclosing
// groups ("services" selects services/restart). No pattern selects all.
type NameFilter struct {
	Patterns []string
}

// ParseNameFilter reads comma-separated glob patterns.
func ParseNameFilter(exprs ...string) (NameFilter, error) {
	var f NameFilter
	for _, e := range exprs {
		for _, p := range strings.Split(e, ",") {
			p = strings.Trim(strings.TrimSpace(p), "/")
			if p == "" {
				continue
			}
			if _, err := path.Match(p, ""); err != nil {
				return f, fmt.Errorf("bad --run pattern %q: %v", p, err)
			}
			f.Patterns = append(f.Patterns, p)
		}
	}
	return f, nil
}

// Match says whether the test named name is selected.
func (f NameFilter) Match(name string) bool {
	if len(f.Patterns) == 0 {
		return true
	}
	parts := strings.Split(name, "/")
	for _, p := range f.Patterns {
		for i := len(parts); i > 0; i-- {
			if ok, _ := path.Match(p, strings.Join(parts[:i], "/")); ok {
				return true
			}
		}
	}
	return false
}
