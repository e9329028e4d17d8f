package hypervisor

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// DefaultBackend is the backend used when none is named.
const DefaultBackend = "qemu"

// Options are a backend's own settings, opaque to kitrun: `--backend-opt
// KEY=VALUE` on the command line. Each backend checks its keys and names
// the valid ones.
type Options map[string]string

// Factory makes a backend from its options.
type Factory func(Options) (Backend, error)

var (
	regMu    sync.Mutex
	registry = map[string]Factory{}
)

// Register makes a backend available by name; backends call it from init.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("hypervisor: backend registered twice: " + name)
	}
	registry[name] = f
}

// Open makes the named backend ("" is DefaultBackend).
func Open(name string, opts Options) (Backend, error) {
	if name == "" {
		name = DefaultBackend
	}
	regMu.Lock()
	f, ok := registry[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown backend %q; valid: %s", name, strings.Join(Backends(), ", "))
	}
	b, err := f(opts)
	if err != nil {
		return nil, err
	}
	rememberOpened(b, name, opts)
	return b, nil
}

// Backends lists the registered backends, sorted.
func Backends() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseOptions reads KEY=VALUE pairs.
func ParseOptions(pairs []string) (Options, error) {
	o := Options{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad backend option %q; use KEY=VALUE", p)
		}
		o[k] = v
	}
	return o, nil
}

// Check fails on keys a backend does not know, naming the valid ones.
func (o Options) Check(backend string, valid ...string) error {
	for k := range o {
		known := false
		for _, v := range valid {
			known = known || k == v
		}
		if !known {
			if len(valid) == 0 {
				return fmt.Errorf("the %s backend takes no options (got %q)", backend, k)
			}
			return fmt.Errorf("unknown option %q for the %s backend; valid: %s", k, backend, strings.Join(valid, ", "))
		}
	}
	return nil
}
