package initproto

// Sandbox is how kitinit confines a service or task (nil: not at all).
// The assembler fills it from the spec; kitinit applies it in a helper
// process (itself, re-executed) before executing the program.
type Sandbox struct {
	// Root is the guest directory that becomes the program's root with
	// pivot_root ("" keeps the image's root, for host-binary and Go
	// programs).
	Root string `json:"root,omitempty"`
	// Caps are the capability numbers kept in the bounding set (and
	// raised for a non-root user); every other one is dropped.
	Caps     []int  `json:"caps"`
	Readonly bool   `json:"readonly,omitempty"`
	Binds    []Bind `json:"binds,omitempty"`
	// NewNet gives the program its own network namespace (loopback only).
	NewNet bool `json:"new_net,omitempty"`
	// Unconfined turns the default seccomp filter off.
	Unconfined bool `json:"unconfined,omitempty"`
	// MemoryMax is the cgroup v2 memory.max in bytes (0: no limit); CPUMax
	// the share of one CPU in thousandths (cpu.max, 0: no limit).
	MemoryMax int64 `json:"memory_max,omitempty"`
	CPUMax    int   `json:"cpu_max,omitempty"`
}

// Bind is a bind mount of a guest path into a sandboxed program's root.
type Bind struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	Writable bool   `json:"writable,omitempty"`
}

// Capabilities maps Linux capability names to their numbers
// (linux/capability.h), for the spec's `capabilities:`.
var Capabilities = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// LastCap is the highest capability number kitinit knows; it drops every
// number up to it that a sandbox does not keep.
const LastCap = 40

// DefaultCapabilities is the set a sandbox keeps when the spec names
// none: the set Docker and LinuxKit's containerd runtime give a container
// by default (github.com/moby/moby oci/caps/defaults.go). It has no
// CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_NET_ADMIN or CAP_SYS_PTRACE.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}
