// Extracted from kernel-hardening-checker (see KSPPSource): each line
// "l += [KconfigCheck(CATEGORY, 'kspp', NAME, VALUE)]" of add_kconfig_checks, with the "if arch" it sits under.

package audit

// KSPPSource is where the table comes from: the Kernel Self Protection
// Project's recommended settings as kernel-hardening-checker encodes
// them (its checks.py, every plain Kconfig check whose decision is
// "kspp"; checks it combines with OR/AND are left out), at the commit
// named.
const KSPPSource = "https://github.com/a13xp0p0v/kernel-hardening-checker/blob/0b9aebf818145f772407135b79418958c1ec5ed1/kernel_hardening_checker/checks.py"

// kspp is the table: CONFIG_ name without the prefix, the wanted value
// ("y", "is not set", a number, or *text* for a list that must contain
// text), the checker's category, and the arches (its names) it applies to.
var kspp = []ksppSetting{
	{"RANDOM_KMALLOC_CACHES", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SLAB_BUCKETS", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SLAB_MERGE_DEFAULT", "is not set", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"BUG_ON_DATA_CORRUPTION", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SLAB_FREELIST_HARDENED", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SLAB_FREELIST_RANDOM", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SHUFFLE_PAGE_ALLOCATOR", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"FORTIFY_SOURCE", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"DEBUG_VIRTUAL", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"INIT_ON_ALLOC_DEFAULT_ON", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"STATIC_USERMODEHELPER", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_LOCKDOWN_LSM", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"LSM", "*lockdown*", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_LOCKDOWN_LSM_EARLY", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"DEBUG_SG", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"ZERO_CALL_USED_REGS", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"SCHED_CORE", "y", "self_protection", []string{"ARM64", "X86_64"}},
	{"RANDOMIZE_KSTACK_OFFSET_DEFAULT", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"PAGE_TABLE_CHECK", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"PAGE_TABLE_CHECK_ENFORCED", "y", "self_protection", []string{"ARM64", "RISCV", "X86_64"}},
	{"DEFAULT_MMAP_MIN_ADDR", "65536", "self_protection", []string{"RISCV", "X86_64"}},
	{"HW_RANDOM_TPM", "y", "self_protection", []string{"RISCV", "X86_64"}},
	{"WERROR", "y", "self_protection", []string{"ARM64", "RISCV"}},
	{"IOMMU_DEFAULT_DMA_STRICT", "y", "self_protection", []string{"X86_64"}},
	{"IOMMU_DEFAULT_DMA_LAZY", "is not set", "self_protection", []string{"X86_64"}},
	{"DEBUG_WX", "y", "self_protection", []string{"ARM64", "RISCV"}},
	{"ARM64_SW_TTBR0_PAN", "y", "self_protection", []string{"ARM64"}},
	{"SHADOW_CALL_STACK", "y", "self_protection", []string{"ARM64"}},
	{"KASAN_HW_TAGS", "y", "self_protection", []string{"ARM64"}},
	{"RANDOMIZE_BASE", "y", "self_protection", []string{"RISCV"}},
	{"SECURITY_YAMA", "y", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"LSM", "*yama*", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_LANDLOCK", "y", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"LSM", "*landlock*", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_SELINUX_DISABLE", "is not set", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_SELINUX_BOOTPARAM", "is not set", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_SELINUX_DEVELOP", "is not set", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_WRITABLE_HOOKS", "is not set", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_SELINUX_DEBUG", "is not set", "security_policy", []string{"ARM64", "RISCV", "X86_64"}},
	{"SECURITY_DMESG_RESTRICT", "y", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"ACPI_CUSTOM_METHOD", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"COMPAT_BRK", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"DEVKMEM", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"BINFMT_MISC", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"INET_DIAG", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"KEXEC", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"PROC_KCORE", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"LEGACY_PTYS", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"HIBERNATION", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"COMPAT", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"IA32_EMULATION", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"X86_X32", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"X86_X32_ABI", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"MODIFY_LDT_SYSCALL", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"OABI_COMPAT", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"X86_MSR", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"LEGACY_TIOCSTI", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"MODULE_FORCE_LOAD", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"M486", "is not set", "cut_attack_surface", []string{"ARM64", "RISCV", "X86_64"}},
	{"COMPAT_VDSO", "is not set", "cut_attack_surface", []string{"X86_64"}},
	{"SYN_COOKIES", "y", "network_security", []string{"ARM64", "RISCV"}},
	{"PROC_MEM_NO_FORCE", "y", "harden_userspace", []string{"ARM64", "RISCV", "X86_64"}},
	{"X86_USER_SHADOW_STACK", "y", "harden_userspace", []string{"X86_64"}},
}
