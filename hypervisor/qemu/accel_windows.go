package qemu

// accelUnusable: whether the Windows Hypervisor Platform feature is on
// shows only when QEMU tries it (it fails at once when it is off), so the
// probe decides.
func accelUnusable(hw string) string { return "" }
