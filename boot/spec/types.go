// Package spec owns kitrun's image specification: the YAML format (version 1),
// its Go types, and all validation. Every error a spec can contain is found
// here, at build time, and reported as file:line:column with what would have
// been valid. Nothing downstream re-validates user input.
package spec

import (
	"time"

	"github.com/kitrun/kitrun/boot/ociimage"
)

// Pos is a position in a spec file, 1-based.
type Pos struct {
	File   string
	Line   int
	Column int
}

// Spec is a parsed and validated image specification. Host paths in it are
// absolute (resolved against the spec file's directory).
type Spec struct {
	Version  int
	Name     string // defaults to the spec file's base name without extension
	File     string // absolute path of the spec file
	Dir      string // directory of the spec file
	Hostname string // defaults to Name
	Kernel   Kernel
	Init     string // only "kitinit" is valid; defaults to it
	Network  Network
	Onboot   []Task
	Onshut   []Task // `onshutdown`
	Services []Service
	Files    []File
	SSH      SSH
	// Formats are disk formats (boot/disk) to build beside the kernel and
	// initramfs (`format:`), each at its position.
	Formats    []string
	FormatsPos []Pos
}

// Kernel says where the kernel and its modules come from. Exactly one of
// Package, Deb or Image is set.
type Kernel struct {
	// Package is a Debian package name without the flavour suffix
	// ("linux-image-cloud"); kitrun appends the arch's flavour and finds the
	// .deb in its kernel cache.
	Package string
	// Deb is a host path to a Debian linux-image .deb.
	Deb string
	// Image is a host path to a vmlinuz; ModulesDir the matching
	// lib/modules/<version> tree (optional when Modules is empty).
	Image      string
	ModulesDir string
	Cmdline    string
	// Modules are module names to load at boot, in addition to those kitrun
	// itself needs. Dependencies are resolved by the assembler.
	Modules    []string
	ModulesPos []Pos
	Pos        Pos
}

// Network configures the guest's first NIC. Mode "none" (the default) gives
// only loopback; "auto" gives the NIC the network of the platform the image
// is built for (on QEMU, user-mode networking with a static address; on a
// platform without a static layout, DHCP; the kernel has no IP
// autoconfiguration, kitinit configures it). "user" is the old name of
// "auto". Address, Gateway and DNS override the platform's; an Address
// makes the layout static on any platform.
type Network struct {
	Mode    string // NetworkNone | NetworkAuto
	Address string // CIDR; "" is the platform's
	Gateway string // "" is the platform's
	DNS     string // "" is the platform's
	Pos     Pos
}

// Network modes.
const (
	NetworkNone = "none"
	NetworkAuto = "auto"
)

// Program is something kitrun puts in the image and runs: built from a Go
// package, copied from a host binary, or already in the image.
// Exactly one of Go, Binary, Command or Image is set.
type Program struct {
	// Go is a Go package to build for the target arch with CGO_ENABLED=0: a
	// directory relative to the spec file ("./cmd/server"), resolved to an
	// absolute host directory after parsing.
	Go string
	// Binary is an absolute host path to an executable to copy (static, or
	// dynamic, in which case its shared libraries and interpreter come along).
	Binary string
	// Command is an absolute path inside the image (a file from `files:`, or
	// another program's install path).
	Command string
	// Image is an OCI image whose root the program runs in: its
	// entrypoint and cmd, env, user and working directory come from the
	// image's config unless Args, Env, User and Dir say otherwise (Dir and
	// User are "" when the spec leaves them to the image).
	Image    *ociimage.Source
	ImagePos Pos // of the image: value, where pull errors point
	// Install is where Go/Binary programs land in the image; defaults to
	// /usr/bin/<base name>.
	Install string
	Args    []string
	Env     map[string]string
	Dir     string // working directory in the guest, default "/"
	User    string // user name or numeric uid; default "root"
	Group   string // group name or numeric gid; default the user's group
	// Sandbox confines the program; nil for none (the default except for
	// images).
	Sandbox *Sandbox
	Pos     Pos
}

// Task is an onboot or onshutdown step: a program run to completion.
type Task struct {
	Name    string
	Program Program
	Timeout time.Duration // default 30s
	Pos     Pos
}

// Restart is a service's restart policy.
type Restart struct {
	Policy      string        // "always" | "on-failure" (default) | "never"
	Backoff     time.Duration // first delay, default 100ms, doubled each restart
	MaxBackoff  time.Duration // cap, default 5s
	MaxRestarts int           // 0 = unlimited
}

// Ready is a readiness probe. Exactly one of the kinds is set.
type Ready struct {
	TCP      string   // "8080" or "127.0.0.1:8080"
	Unix     string   // socket path in the guest
	File     string   // path in the guest that must exist
	Exec     []string // argv run in the guest; ready when it exits 0
	Log      string   // regular expression matched against service output lines
	Timeout  time.Duration
	Interval time.Duration // between polls, default 10ms
	Pos      Pos
}

// Kind names the probe kind that is set, or "" for none.
func (r Ready) Kind() string {
	switch {
	case r.TCP != "":
		return "tcp"
	case r.Unix != "":
		return "unix"
	case r.File != "":
		return "file"
	case len(r.Exec) > 0:
		return "exec"
	case r.Log != "":
		return "log"
	}
	return ""
}

// Service is a long-running, supervised program.
type Service struct {
	Name    string
	Program Program
	Restart Restart
	Ready   *Ready // nil: ready as soon as started
	Pos     Pos
}

// File is an entry under `files:`. Exactly one of Contents, Source,
// Directory or Symlink describes it (Contents may be empty).
type File struct {
	Path      string // absolute guest path
	Contents  *string
	Source    string // absolute host path
	Directory bool
	Symlink   string
	Mode      uint32 // default 0644 for files, 0755 for directories
	UID, GID  int
	Pos       Pos
}

// SSH puts kitrun's SSH server (kitsshd) in the image as a supervised
// service; keys are generated per boot, never stored in the image.
type SSH struct {
	Enabled bool
	Port    int // guest port, default 22
	Pos     Pos
}
