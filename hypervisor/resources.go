package hypervisor

import (
	"fmt"
	"strconv"
	"strings"
)

// Resources are what a machine gets: the one place for their defaults.
type Resources struct {
	// Machine is the machine type ("" is the platform's default).
	Machine string `json:"machine,omitempty"`
	// Accel is "auto", "kvm", "hvf", "whpx" or "tcg" ("" is auto); backends resolve auto
	// by probing.
	Accel     string `json:"accel"`
	MemoryMiB int    `json:"memory_mib"`
	CPUs      int    `json:"cpus"`
}

// Defaults of Resources.
const (
	DefaultAccel     = "auto"
	DefaultMemoryMiB = 256
	DefaultCPUs      = 1
)

// WithDefaults fills in what r leaves unset.
func (r Resources) WithDefaults() Resources {
	if r.Accel == "" {
		r.Accel = DefaultAccel
	}
	if r.MemoryMiB <= 0 {
		r.MemoryMiB = DefaultMemoryMiB
	}
	if r.CPUs <= 0 {
		r.CPUs = DefaultCPUs
	}
	return r
}

// ParseMemory reads a memory size in MiB: "256", "256M", "256MiB", "1G",
// "1GiB". It is kitrun's one memory-size parser (flags, test.yml, bench).
func ParseMemory(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := 1
	for _, suf := range []struct {
		s string
		m int
	}{{"GIB", 1024}, {"GB", 1024}, {"G", 1024}, {"MIB", 1}, {"MB", 1}, {"M", 1}} {
		if rest, ok := strings.CutSuffix(t, suf.s); ok {
			t, mult = rest, suf.m
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > 1<<20 {
		return 0, fmt.Errorf("bad memory size %q; use e.g. 128M or 1G", s)
	}
	return n * mult, nil
}

// FormatMemory renders MiB as users write it: "256M", "2G".
func FormatMemory(mib int) string {
	if mib%1024 == 0 {
		return strconv.Itoa(mib/1024) + "G"
	}
	return strconv.Itoa(mib) + "M"
}
