// Package arch is the table of target architectures kitrun supports. Every
// arch-dependent fact on the image side (Go's GOARCH, Debian's architecture
// and kernel flavour) lives in one row here, so that adding an architecture
// is adding a row, not hunting for `if`s. What a guest sees of a machine
// (console and channel devices, modules) depends on the backend too: each
// backend's platform (boot/platform) says it, keyed by the same Name.
package arch

import (
	"debug/elf"
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
	// ELF and ELFData are the machine and byte order of the arch's
	// executables: a host binary (a spec's binary: entry) of another arch
	// is a build error.
	ELF     elf.Machine
	ELFData elf.Data
	// Triplet is Debian's multiarch directory of the arch's libraries
	// (/usr/lib/TRIPLET), where a host binary's shared libraries are found.
	Triplet string
	// NoCloudKernel: Debian builds no cloud flavour for the arch, so a
	// spec's "linux-image-cloud" (what every shipped spec names) means the
	// arch's generic kernel, KernelFlavour (see KernelPackage).
	NoCloudKernel bool
	// DebianRelease is the Debian release whose archive has the arch's
	// kernel when it is not the host's (riscv64 is official from Debian 13
	// on); `make kernels` fetches it from there. Empty: the host's release.
	DebianRelease string
}

// KernelPackage is the package prefix a spec's kernel package names on
// this arch: "linux-image-cloud" becomes "linux-image" where Debian has no
// cloud flavour (the generic kernel builds the same virtio drivers as
// modules; it only has more of them).
func (a Arch) KernelPackage(pkg string) string {
	if a.NoCloudKernel && pkg == "linux-image-cloud" {
		return "linux-image"
	}
	return pkg
}

var table = map[string]Arch{
	"x86_64": {
		Name:          "x86_64",
		GOARCH:        "amd64",
		GoEnv:         []string{"GOAMD64=v1"},
		Debian:        "amd64",
		KernelFlavour: "cloud-amd64",
		ELF:           elf.EM_X86_64, ELFData: elf.ELFDATA2LSB, Triplet: "x86_64-linux-gnu",
	},
	"aarch64": {
		Name:          "aarch64",
		GOARCH:        "arm64",
		GoEnv:         []string{"GOARM64=v8.0"},
		Debian:        "arm64",
		KernelFlavour: "cloud-arm64",
		ELF:           elf.EM_AARCH64, ELFData: elf.ELFDATA2LSB, Triplet: "aarch64-linux-gnu",
	},
	"riscv64": {
		Name:   "riscv64",
		GOARCH: "riscv64",
		// rva20u64 is the baseline profile (RV64GC) every riscv64 Linux
		// machine, and QEMU's default rv64 CPU, implements.
		GoEnv:         []string{"GORISCV64=rva20u64"},
		Debian:        "riscv64",
		KernelFlavour: "riscv64",
		NoCloudKernel: true,
		DebianRelease: "trixie",
		ELF:           elf.EM_RISCV, ELFData: elf.ELFDATA2LSB, Triplet: "riscv64-linux-gnu",
	},
	"s390x": {
		Name:          "s390x",
		GOARCH:        "s390x",
		Debian:        "s390x",
		KernelFlavour: "s390x",
		NoCloudKernel: true,
		ELF:           elf.EM_S390, ELFData: elf.ELFDATA2MSB, Triplet: "s390x-linux-gnu",
	},
	"ppc64le": {
		Name:   "ppc64le",
		GOARCH: "ppc64le",
		// power8 is Go's (and Debian's ppc64el) baseline.
		GoEnv:         []string{"GOPPC64=power8"},
		Debian:        "ppc64el",
		KernelFlavour: "powerpc64le",
		NoCloudKernel: true,
		ELF:           elf.EM_PPC64, ELFData: elf.ELFDATA2LSB, Triplet: "powerpc64le-linux-gnu",
	},
}

// aliases lets users type the names other tools use.
var aliases = map[string]string{
	"amd64":   "x86_64",
	"x64":     "x86_64",
	"arm64":   "aarch64",
	"ppc64el": "ppc64le",
	"riscv":   "riscv64",
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
