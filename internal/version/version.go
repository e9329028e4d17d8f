// Package version says which kitrun this is: the version given at link time
// (go build -ldflags "-X github.com/kitrun/kitrun/internal/version.version=v1.2.3",
// as the Makefile does), else what the Go toolchain recorded in the binary —
// the module version of `go install …@v1.2.3`, the VCS revision of a build
// in a checkout — plus the Go version that built it. It is the one home of
// kitrun's version: `kitrun --version` prints it and bench records it.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time; empty when it was not.
var version string

// devel is what Go records as the main module's version when it has none.
const devel = "(devel)"

// Info is the identity of a kitrun build.
type Info struct {
	// Version is the link-time version, else the module version ("v1.2.3"
	// or a pseudo-version), else "(devel)".
	Version string
	// Revision, Time and Modified are the VCS stamp of the build (commit,
	// commit time, uncommitted changes), when it had one.
	Revision string
	Time     string
	Modified bool
	// Go is the toolchain that built kitrun; Platform is GOOS/GOARCH.
	Go       string
	Platform string
}

// Get returns this kitrun's identity.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return fromBuild(version, bi)
}

// String is Get().String().
func String() string { return Get().String() }

// fromBuild derives the identity from a link-time version and the build
// information (nil when the binary has none).
func fromBuild(linked string, bi *debug.BuildInfo) Info {
	i := Info{Version: strings.TrimSpace(linked), Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if i.Version == "" {
			i.Version = devel
		}
		return i
	}
	if bi.GoVersion != "" {
		i.Go = bi.GoVersion
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" {
		i.Version = devel
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is the one-line version: "v1.2.3", a pseudo-version such as
// "v0.0.0-20261202182500-73baad4c1f2e+dirty", or "(devel)" followed by
// the short revision when there is one ("(devel) 73baad4c1f2e+dirty").
func (i Info) String() string {
	if i.Version != devel || i.Revision == "" {
		return i.Version
	}
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if i.Modified {
		rev += "+dirty"
	}
	return i.Version + " " + rev
}

// Long is the multi-line form of `kitrun version`, one "name value" line
// per known fact.
func (i Info) Long() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version   %s\n", i.Version)
	if i.Revision != "" {
		mod := ""
		if i.Modified {
			mod = " (with uncommitted changes)"
		}
		fmt.Fprintf(&b, "revision  %s%s\n", i.Revision, mod)
	}
	if i.Time != "" {
		fmt.Fprintf(&b, "committed %s\n", i.Time)
	}
	fmt.Fprintf(&b, "go        %s %s\n", i.Go, i.Platform)
	return b.String()
}
