package qemu

import "golang.org/x/sys/unix"

// accelUnusable says why hvf cannot even be tried, or "": the kernel
// says whether Hypervisor.framework is supported (kern.hv_support). Using
// it also needs QEMU signed with the hypervisor entitlement, as Homebrew's
// is; the probe finds out.
func accelUnusable(hw string) string {
	v, err := unix.SysctlUint32("kern.hv_support")
	if err != nil {
		return "Hypervisor.framework is not available (sysctl kern.hv_support: " + err.Error() + ")"
	}
	if v != 1 {
		return "Hypervisor.framework is not supported on this Mac (kern.hv_support=0)"
	}
	return ""
}
