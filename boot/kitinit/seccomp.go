//go:build linux

package kitinit

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM in a sandbox with the default seccomp
// filter: loading kernel code (modules, kexec, bpf), changing the mount
// tree or namespaces, swap, reboot, kernel keyrings, clocks, process
// tracing and handle-based opens that bypass the mount tree. Most need a
// capability the default set drops anyway; the filter holds when a spec
// keeps one. (After Docker's default profile, which denies these too.)
var deniedSyscalls = []uintptr{
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_ACCT,
	unix.SYS_ADD_KEY, unix.SYS_KEYCTL, unix.SYS_REQUEST_KEY,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_USERFAULTFD,
	unix.SYS_QUOTACTL, unix.SYS_SYSLOG,
}

// auditArch is each GOARCH's AUDIT_ARCH value, which the filter checks so
// that a syscall made through another ABI's numbers is killed, not
// misread.
var auditArch = map[string]uint32{
	"amd64":   unix.AUDIT_ARCH_X86_64,
	"arm64":   unix.AUDIT_ARCH_AARCH64,
	"riscv64": unix.AUDIT_ARCH_RISCV64,
	"s390x":   unix.AUDIT_ARCH_S390X,
	"ppc64le": unix.AUDIT_ARCH_PPC64LE,
}

// Classic BPF opcodes and seccomp return values (linux/filter.h,
// linux/seccomp.h).
const (
	bpfLdWAbs  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgeK    = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfRetK    = unix.BPF_RET | unix.BPF_K
	retAllow   = 0x7fff0000 // SECCOMP_RET_ALLOW
	retErrno   = 0x00050000 // SECCOMP_RET_ERRNO
	retKillPrc = 0x80000000 // SECCOMP_RET_KILL_PROCESS
	x32Bit     = 0x40000000 // __X32_SYSCALL_BIT
	offNr      = 0          // offsetof(struct seccomp_data, nr)
	offArch    = 4          // offsetof(struct seccomp_data, arch)
)

// seccompFilter is the default filter for goarch (this binary's own
// syscall numbers), nil for an arch it does not know.
func seccompFilter(goarch string) []unix.SockFilter {
	arch, ok := auditArch[goarch]
	if !ok || goarch != runtime.GOARCH {
		return nil
	}
	eperm := uint32(retErrno | uint32(unix.EPERM))
	f := []unix.SockFilter{
		{Code: bpfLdWAbs, K: offArch},
		{Code: bpfJeqK, Jt: 1, Jf: 0, K: arch},
		{Code: bpfRetK, K: retKillPrc},
		{Code: bpfLdWAbs, K: offNr},
	}
	if goarch == "amd64" {
		// The x32 ABI shares AUDIT_ARCH_X86_64: refuse it outright.
		f = append(f, unix.SockFilter{Code: bpfJgeK, Jt: 0, Jf: 1, K: x32Bit},
			unix.SockFilter{Code: bpfRetK, K: eperm})
	}
	for _, nr := range deniedSyscalls {
		f = append(f, unix.SockFilter{Code: bpfJeqK, Jt: 0, Jf: 1, K: uint32(nr)},
			unix.SockFilter{Code: bpfRetK, K: eperm})
	}
	return append(f, unix.SockFilter{Code: bpfRetK, K: retAllow})
}
