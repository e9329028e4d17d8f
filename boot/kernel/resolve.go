package kernel

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// UnknownModuleError is the error for a module name the kernel has neither
// built in nor as a module file. Callers can attach the name's position in
// the spec.
type UnknownModuleError struct {
	Name        string   // as given
	Suggestions []string // up to 3 known names, nearest first
}

func (e *UnknownModuleError) Error() string {
	msg := fmt.Sprintf("unknown kernel module %q", e.Name)
	switch n := len(e.Suggestions); n {
	case 0:
	case 1:
		msg += "; did you mean " + e.Suggestions[0] + "?"
	default:
		msg += "; did you mean " + strings.Join(e.Suggestions[:n-1], ", ") + " or " + e.Suggestions[n-1] + "?"
	}
	return msg
}

// Lookup returns the module called name ('-' and '_' alike), or an
// *UnknownModuleError.
func (ix *Index) Lookup(name string) (Module, error) {
	if m, ok := ix.mods[normName(name)]; ok {
		return *m, nil
	}
	return Module{}, &UnknownModuleError{Name: name, Suggestions: ix.suggest(normName(name))}
}

// All returns every module in the index, built-in and loadable, sorted by
// name.
func (ix *Index) All() []Module {
	out := make([]Module, 0, len(ix.names))
	for _, n := range ix.names {
		out = append(out, *ix.mods[n])
	}
	return out
}

// Resolve returns the modules to load so that the named modules are present:
// each needed module once, every module after its dependencies, and
// otherwise in name order, so the result does not depend on the order of
// names. Built-in modules are satisfied already and are left out (a name that
// is built in contributes nothing).
//
// Soft dependencies ("softdep=pre:"/"post:") are included when the tree has
// them, by module name or by exact alias (as "crc32c" names the crc32c_generic
// module); missing ones are ignored, as modprobe does, and so is a soft
// dependency that would close a cycle, being only an ordering hint.
//
// Unknown names give one *UnknownModuleError each, joined with errors.Join
// (iterate with errors.As or the Unwrap() []error method). A hard dependency
// cycle, or a dependency missing from the tree, is an error too.
func (ix *Index) Resolve(names ...string) ([]Module, error) {
	var errs []error
	var roots []string
	for _, n := range names {
		m, err := ix.Lookup(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !m.Builtin {
			roots = append(roots, m.Name)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Collect the closure, and the edges "a before b".
	g := newGraph()
	type softEdge struct{ from, to string }
	var soft []softEdge
	queue := append([]string(nil), roots...)
	for _, r := range roots {
		g.add(r)
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		m := ix.mods[name]
		visit := func(n string) {
			if !g.has(n) {
				g.add(n)
				queue = append(queue, n)
			}
		}
		for _, d := range m.Depends {
			dm, ok := ix.mods[d]
			if !ok {
				return nil, fmt.Errorf("kernel module %s depends on %s, which is not in %s", name, d, ix.Dir)
			}
			if dm.Builtin {
				continue
			}
			visit(d)
			g.edge(d, name)
		}
		for _, s := range m.SoftdepPre {
			for _, p := range ix.provides(s) {
				visit(p)
				soft = append(soft, softEdge{p, name})
			}
		}
		for _, s := range m.SoftdepPost {
			for _, p := range ix.provides(s) {
				visit(p)
				soft = append(soft, softEdge{name, p})
			}
		}
	}
	sort.Slice(soft, func(i, j int) bool {
		if soft[i].from != soft[j].from {
			return soft[i].from < soft[j].from
		}
		return soft[i].to < soft[j].to
	})
	for _, e := range soft {
		if e.from != e.to && !g.reaches(e.to, e.from) {
			g.edge(e.from, e.to)
		}
	}

	order, cycle := g.sort()
	if cycle != nil {
		return nil, fmt.Errorf("kernel module dependency cycle: %s", strings.Join(cycle, " -> "))
	}
	out := make([]Module, len(order))
	for i, n := range order {
		out[i] = *ix.mods[n]
	}
	return out, nil
}

// provides resolves a soft dependency: the loadable modules to add for it,
// none if it is built in or unknown.
func (ix *Index) provides(nameOrAlias string) []string {
	if m, ok := ix.mods[nameOrAlias]; ok {
		if m.Builtin {
			return nil
		}
		return []string{m.Name}
	}
	var out []string
	for _, p := range ix.aliases[nameOrAlias] {
		m, ok := ix.mods[p]
		if !ok {
			continue
		}
		if m.Builtin {
			return nil // the kernel has it already
		}
		out = append(out, p)
	}
	return out
}

// graph is a small directed graph of module names; an edge a->b means a is
// loaded before b.
type graph struct {
	succ map[string][]string
	npre map[string]int
}

func newGraph() *graph {
	return &graph{succ: map[string][]string{}, npre: map[string]int{}}
}

func (g *graph) add(n string)      { g.npre[n] = 0 }
func (g *graph) has(n string) bool { _, ok := g.npre[n]; return ok }

func (g *graph) edge(a, b string) {
	for _, s := range g.succ[a] {
		if s == b {
			return
		}
	}
	g.succ[a] = append(g.succ[a], b)
	g.npre[b]++
}

// reaches reports whether there is a path from a to b.
func (g *graph) reaches(a, b string) bool {
	seen := map[string]bool{a: true}
	stack := []string{a}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == b {
			return true
		}
		for _, s := range g.succ[n] {
			if !seen[s] {
				seen[s] = true
				stack = append(stack, s)
			}
		}
	}
	return false
}

// sort orders the graph topologically, always taking the smallest name that
// is ready (Kahn's algorithm). If the graph has a cycle, it returns one, in
// "depends on" direction and closed (a -> b -> a).
func (g *graph) sort() (order, cycle []string) {
	npre := make(map[string]int, len(g.npre))
	var ready []string
	for n, c := range g.npre {
		npre[n] = c
		if c == 0 {
			ready = append(ready, n)
		}
	}
	sort.Strings(ready)
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		for _, s := range g.succ[n] {
			if npre[s]--; npre[s] == 0 {
				i := sort.SearchStrings(ready, s)
				ready = append(ready, "")
				copy(ready[i+1:], ready[i:])
				ready[i] = s
			}
		}
	}
	if len(order) == len(npre) {
		return order, nil
	}
	// Every node left has a predecessor that is left too: walk predecessors
	// from the smallest until one repeats.
	pred := map[string]string{}
	var left []string
	for n, c := range npre {
		if c > 0 {
			left = append(left, n)
		}
	}
	sort.Strings(left)
	for _, a := range left {
		succ := append([]string(nil), g.succ[a]...)
		sort.Strings(succ)
		for _, b := range succ {
			if npre[b] > 0 && npre[a] > 0 {
				if _, ok := pred[b]; !ok {
					pred[b] = a
				}
			}
		}
	}
	seen := map[string]int{}
	var path []string
	for n := left[0]; ; n = pred[n] {
		if i, ok := seen[n]; ok {
			cycle = append(path[i:], n) // n depends on pred[n] ...
			return nil, cycle
		}
		seen[n] = len(path)
		path = append(path, n)
	}
}

// suggest returns up to 3 known names near name by edit distance.
func (ix *Index) suggest(name string) []string {
	limit := max(1, min(3, len(name)/4))
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	// An alias ("fs-ext4", "crc32c") suggests the modules providing it.
	for _, n := range ix.aliases[name] {
		cands = append(cands, cand{n, 0})
	}
	for _, n := range ix.names {
		if d := levenshtein(name, n); d <= limit && !slices.Contains(ix.aliases[name], n) {
			cands = append(cands, cand{n, d})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].d < cands[j].d })
	var out []string
	for i := 0; i < len(cands) && i < 3; i++ {
		out = append(out, cands[i].name)
	}
	return out
}

// levenshtein returns the edit distance between a and b (insertions,
// deletions and substitutions of bytes).
func levenshtein(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := min(row[j]+1, row[j-1]+1, diag+cost)
			diag, row[j] = row[j], next
		}
	}
	return row[len(b)]
}
