package qemu

import "os"

// accelUnusable says why the hardware accelerator cannot even be tried,
// or "". On Linux that is /dev/kvm, which must open read-write.
func accelUnusable(hw string) string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "/dev/kvm is not usable: " + err.Error()
	}
	f.Close()
	return ""
}
