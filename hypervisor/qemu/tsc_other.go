//go:build !amd64

package qemu

// hostTSCkHz is unknown off x86: TCG's guest TSC then follows another clock.
func hostTSCkHz() int { return 0 }
