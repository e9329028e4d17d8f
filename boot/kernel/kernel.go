// Package kernel owns the guest kernel: finding a Debian linux-image .deb in
// kitrun's kernel cache (FindDeb), unpacking the kernel image and its module
// tree from it once, in pure Go (FromDeb), or taking a vmlinuz and module
// tree the user already has (FromFiles); and the module index (Modules) that
// turns module names into the list of .ko files to load, dependencies first
// (Index.Resolve).
//
// Debian's packages carry no modules.dep (depmod runs at install time), so
// the index is built from each module's own ELF .modinfo section
// (depends=, softdep=, name=, alias=) plus modules.builtin and
// modules.builtin.modinfo for what is compiled into the kernel.
//
// Module names are normalised as the kernel and kmod do: '-' and '_' are the
// same character, and names are stored with '_'.
package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kernel is a kernel image with its modules, on the host.
type Kernel struct {
	// Version is the kernel release (uname -r), e.g. "6.1.0-56-cloud-amd64".
	Version string
	// Image is the host path of the kernel image (vmlinuz).
	Image string
	// Config is the host path of the kernel's config file, or "".
	Config string
	// ModulesDir is the host path of lib/modules/<Version>, or "" if the
	// kernel comes without modules.
	ModulesDir string

	// indexCache is where Modules caches its index by default; set by FromDeb.
	indexCache string
}

// FromFiles describes a kernel the user supplies: image is a vmlinuz, and
// modulesDir the matching lib/modules/<version> tree (may be "" for a kernel
// without modules). The version is the base name of modulesDir. If a
// "config-<version>" file sits next to the image it becomes Config.
func FromFiles(image, modulesDir string) (*Kernel, error) {
	img, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(img)
	if err != nil {
		return nil, fmt.Errorf("kernel image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("kernel image %s is not a regular file", img)
	}
	k := &Kernel{Image: img}
	if modulesDir == "" {
		return k, nil
	}
	md, err := filepath.Abs(modulesDir)
	if err != nil {
		return nil, err
	}
	st, err = os.Stat(md)
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("kernel modules directory %s is not a directory", md)
	}
	k.ModulesDir = md
	k.Version = filepath.Base(md)
	if !looksLikeRelease(k.Version) {
		return nil, fmt.Errorf("kernel modules directory %s should be named after the kernel release, like lib/modules/6.1.0-56-cloud-amd64", md)
	}
	cfg := filepath.Join(filepath.Dir(img), "config-"+k.Version)
	if st, err := os.Stat(cfg); err == nil && st.Mode().IsRegular() {
		k.Config = cfg
	}
	return k, nil
}

// looksLikeRelease accepts kernel release strings: they start with a digit.
func looksLikeRelease(v string) bool {
	return v != "" && v[0] >= '0' && v[0] <= '9' && !strings.ContainsAny(v, "/ \t\n")
}
