package kitsshd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CreditSeed feeds the seed file at path to the kernel's random pool,
// crediting it as entropy (RNDADDENTROPY; needs CAP_SYS_ADMIN), and removes
// the file: a seed is used once.
//
// Why: SSH's key exchange reads crypto/rand, and getrandom(2) blocks until
// the kernel's CRNG is initialised. A guest without a hardware RNG (TCG's
// CPU models have no RDRAND, the machines no virtio-rng) gets there about
// a second after userspace starts, and the first connection would wait for
// it. The seed comes from the host's CSPRNG over the same private channel
// as the host key, so it is as trustworthy as that key; the kernel mixes it
// with everything else it has. A missing file is not an error (0 bytes).
func CreditSeed(path string) (int, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	os.Remove(path)
	if len(seed) == 0 {
		return 0, nil
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+(len(seed)+3)/4*4)
	binary.NativeEndian.PutUint32(info[0:], uint32(8*len(seed)))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(seed)))
	copy(info[8:], seed)
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var errno error
	if err := rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
		if e != 0 {
			errno = e
		}
	}); err != nil {
		return 0, err
	}
	if errno != nil {
		return 0, fmt.Errorf("crediting the random seed: %w", errno)
	}
	return len(seed), nil
}
