package testcases

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// File names in a cases tree.
const (
	TestFileName  = "test.yml"
	SpecFileName  = "spec.yml"
	GroupFileName = "group.yml"
	// CasesDirName: a directory holding one is taken as its parent, so
	// `kitrun test testcases/` finds testcases/cases/.
	CasesDirName = "cases"
)

// Case is one test directory: a spec.yml and a test.yml.
type Case struct {
	// Name is the path below the root with each NNN_ prefix stripped:
	// 010_services/020_restart is services/restart.
	Name string
	// Group is the name of the enclosing directory ("" at the top).
	Group string
	Dir   string
	Spec  string
	// Test is nil when the test file is malformed; ParseErr says why.
	Test     *TestFile
	ParseErr error
	// Groups are the enclosing directories that hold a group.yml,
	// outermost first.
	Groups []*Group
}

var orderPrefix = regexp.MustCompile(`^(\d+)[_-]`)

// stripOrder removes a directory name's NNN_ ordering prefix.
func stripOrder(name string) string {
	if m := orderPrefix.FindStringSubmatch(name); m != nil && len(name) > len(m[0]) {
		return name[len(m[0]):]
	}
	return name
}

// compareEntries orders directory names by their NNN prefix (numerically),
// then by name; names without a prefix come after those with one.
func compareEntries(a, b string) int {
	na, oka := orderOf(a)
	nb, okb := orderOf(b)
	switch {
	case oka && okb:
		return cmp.Or(cmp.Compare(na, nb), cmp.Compare(a, b))
	case oka:
		return -1
	case okb:
		return 1
	}
	return cmp.Compare(a, b)
}

func orderOf(name string) (int, bool) {
	m := orderPrefix.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// Discover finds the cases under dir in order. dir may be a cases tree, a
// directory holding one named cases/, or a single case directory. A
// malformed test.yml or group.yml does not stop discovery: the cases it
// concerns carry the error and fail when run.
func Discover(dir string) ([]*Case, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if isFile(filepath.Join(dir, TestFileName)) {
		c := loadCase(dir, stripOrder(filepath.Base(filepath.Clean(dir))), "", nil)
		return []*Case{c}, nil
	}
	if sub := filepath.Join(dir, CasesDirName); isDir(sub) {
		dir = sub
	}
	var out []*Case
	err = walk(dir, "", nil, &out)
	return out, err
}

func walk(dir, name string, groups []*Group, out *[]*Case) error {
	if isFile(filepath.Join(dir, GroupFileName)) {
		groups = append(slices.Clip(groups), loadGroup(dir, name))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var subdirs []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "testdata" {
			continue
		}
		subdirs = append(subdirs, n)
	}
	slices.SortFunc(subdirs, compareEntries)
	for _, n := range subdirs {
		path := filepath.Join(dir, n)
		child := stripOrder(n)
		if name != "" {
			child = name + "/" + child
		}
		if isFile(filepath.Join(path, TestFileName)) {
			*out = append(*out, loadCase(path, child, name, groups))
			continue
		}
		if err := walk(path, child, groups, out); err != nil {
			return err
		}
	}
	return nil
}

func loadCase(dir, name, group string, groups []*Group) *Case {
	c := &Case{Name: name, Group: group, Dir: dir, Spec: filepath.Join(dir, SpecFileName), Groups: groups}
	c.Test, c.ParseErr = ParseTestFile(filepath.Join(dir, TestFileName))
	if c.ParseErr == nil && !isFile(c.Spec) {
		c.ParseErr = fmt.Errorf("%s: missing; every test directory holds a spec.yml (the image) beside its test.yml", c.Spec)
	}
	return c
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
