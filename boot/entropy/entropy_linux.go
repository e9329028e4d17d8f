package entropy

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Credit adds seed to the kernel's input pool, credited as entropy
// (RNDADDENTROPY; needs CAP_SYS_ADMIN).
func Credit(seed []byte) error {
	if len(seed) == 0 {
		return nil
	}
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+(len(seed)+3)/4*4)
	binary.NativeEndian.PutUint32(info[0:], uint32(8*len(seed)))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(seed)))
	copy(info[8:], seed)
	return ioctl(unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])), "crediting the random seed")
}

// Reseed makes the kernel's CRNG draw fresh key material from the input
// pool now (RNDRESEEDCRNG). Crediting alone does not do that once the CRNG
// is initialised: it reseeds on its own schedule, up to a minute later, and
// two VMs restored from one snapshot would share their CRNG state until
// then.
func Reseed() error {
	return ioctl(unix.RNDRESEEDCRNG, 0, "reseeding the CRNG")
}

func ioctl(req uint, arg uintptr, what string) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno error
	if err := rc.Control(func(fd uintptr) {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), arg); e != 0 {
			errno = e
		}
	}); err != nil {
		return err
	}
	if errno != nil {
		return fmt.Errorf("%s: %w", what, errno)
	}
	return nil
}
