// Package arch is the table of target architectures kitrun supports. Every
// arch-dependent fact on the image side (Go's GOARCH, Debian's architecture
// and kernel flavour) lives in one row here, so that adding an architecture
// is adding a row, not hunting for `if`s. What a guest sees of a machine
// (console and channel devices, modules) depends on the backend too: each
// backend's platform (boot/platform) says it, keyed by the same Name.
package arch

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
)

// Arch describes one target architecture.
type Arch struct {
	// Name is kitrun's name for the architecture, as users type it (uname -m).
	Name string
	// GOARCH is what Go calls it when cross-compiling kitinit and services.
	GOARCH string
	// GoEnv pins the instruction-set level (GOAMD64, GOARM64, ...) that
	// kitrun's own guest programs are built for to the baseline every
	// machine of the arch runs, so that a GOAMD64=v3 in a builder's
	// environment cannot change the embedded binaries or produce a kitinit
	// the emulated CPU lacks instructions for.
	GoEnv []string
	// Debian is Debian's architecture name, used to pick kernel packages.
	Debian string
	// KernelFlavour is the Debian kernel flavour kitrun uses by default.
	KernelFlavour string
}

var table = map[string]Arch{
	"x86_64": {
		Name:          "x86_64",
		GOARCH:        "amd64",
		GoEnv:         []string{"GOAMD64=v1"},
		Debian:        "amd64",
		KernelFlavour: "cloud-amd64",
	},
	"aarch64": {
		Name:          "aarch64",
		GOARCH:        "arm64",
		GoEnv:         []string{"GOARM64=v8.0"},
		Debian:        "arm64",
		KernelFlavour: "cloud-arm64",
	},
}

// aliases lets users type the names other tools use.
var aliases = map[string]string{
	"amd64": "x86_64",
	"x64":   "x86_64",
	"arm64": "aarch64",
}

// Lookup finds an architecture by kitrun, Go or Debian name.
func Lookup(name string) (Arch, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		n = a
	}
	if a, ok := table[n]; ok {
		return a, nil
	}
	return Arch{}, fmt.Errorf("unknown architecture %q; valid: %s", name, strings.Join(Names(), ", "))
}

// Host is the architecture kitrun itself runs on.
func Host() Arch {
	for _, a := range table {
		if a.GOARCH == runtime.GOARCH {
			return a
		}
	}
	return Arch{Name: runtime.GOARCH, GOARCH: runtime.GOARCH, Debian: runtime.GOARCH}
}

// Names lists the supported architectures in a stable order.
func Names() []string {
	var names []string
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns every supported architecture in a stable order.
func All() []Arch {
	var out []Arch
	for _, n := range Names() {
		out = append(out, table[n])
	}
	return out
}
