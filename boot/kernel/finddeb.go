package kernel

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kitrun/kitrun/boot/deb"
)

// NoDebError says that FindDeb found no matching package, and how to get
// one. It matches fs.ErrNotExist with errors.Is.
type NoDebError struct {
	Dir     string
	Prefix  string // e.g. "linux-image"
	Flavour string // e.g. "cloud-amd64"
}

func (e *NoDebError) Error() string {
	return fmt.Sprintf(`no %s-*-%s .deb in %s; run "make kernels" or "apt-get download %s-%s" there (arm64: dpkg --add-architecture arm64 && apt-get update first)`,
		e.Prefix, e.Flavour, e.Dir, e.Prefix, e.Flavour)
}

func (e *NoDebError) Unwrap() error { return fs.ErrNotExist }

// FindDeb finds the newest kernel package of a flavour among the .deb files
// in dir (not its subdirectories): files named
//
//	<prefix>-<abi>-<flavour>_<version>_<arch>.deb
//	e.g. linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb
//
// where <abi> starts with a digit and each of its '-'-separated parts does
// too (so "-dbg" and "-unsigned" packages, and other flavours, never match).
// The newest is the one with the highest Debian <version> (compared as dpkg
// does), then the highest <abi>.
//
// pkg may be the bare prefix ("linux-image"), or, as specs write it, include
// the flavour's variant ("linux-image-cloud" with flavour "cloud-amd64"), or
// be the whole metapackage name ("linux-image-cloud-amd64"). The rule: if pkg
// ends with "-" followed by the flavour or a leading part of it (split at
// '-': "cloud-amd64", "cloud"), that suffix is removed; the longest such
// suffix wins.
func FindDeb(dir, pkg, flavour string) (string, error) {
	prefix := PackagePrefix(pkg, flavour)
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("kernel cache: %w", err)
	}
	var best string
	var bestVer, bestABI string
	for _, e := range ents {
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		abi, ver, ok := matchDeb(e.Name(), prefix, flavour)
		if !ok {
			continue
		}
		if best == "" || better(ver, abi, e.Name(), bestVer, bestABI, best) {
			best, bestVer, bestABI = e.Name(), ver, abi
		}
	}
	if best == "" {
		return "", &NoDebError{Dir: dir, Prefix: prefix, Flavour: flavour}
	}
	return filepath.Join(dir, best), nil
}

func better(ver, abi, name, bestVer, bestABI, bestName string) bool {
	if c := deb.CompareVersions(ver, bestVer); c != 0 {
		return c > 0
	}
	if c := deb.CompareVersions(abi, bestABI); c != 0 {
		return c > 0
	}
	return name > bestName
}

// PackagePrefix applies FindDeb's rule for the package name: it strips a
// trailing "-<flavour>" or "-<leading part of flavour>" from pkg.
func PackagePrefix(pkg, flavour string) string {
	parts := strings.Split(flavour, "-")
	for n := len(parts); n >= 1; n-- {
		suffix := "-" + strings.Join(parts[:n], "-")
		if p, ok := strings.CutSuffix(pkg, suffix); ok && p != "" {
			return p
		}
	}
	return pkg
}

// matchDeb parses a package file name, returning its ABI part and its Debian
// version.
func matchDeb(file, prefix, flavour string) (abi, version string, ok bool) {
	base, ok := strings.CutSuffix(file, ".deb")
	if !ok {
		return "", "", false
	}
	fields := strings.Split(base, "_")
	if len(fields) != 3 {
		return "", "", false
	}
	name := fields[0]
	// apt-get download escapes the epoch's ':' as "%3a".
	version = strings.ReplaceAll(strings.ReplaceAll(fields[1], "%3a", ":"), "%3A", ":")
	abi, ok = strings.CutPrefix(name, prefix+"-")
	if !ok {
		return "", "", false
	}
	abi, ok = strings.CutSuffix(abi, "-"+flavour)
	if !ok || abi == "" {
		return "", "", false
	}
	for _, p := range strings.Split(abi, "-") {
		if p == "" || p[0] < '0' || p[0] > '9' {
			return "", "", false
		}
	}
	return abi, version, version != ""
}
