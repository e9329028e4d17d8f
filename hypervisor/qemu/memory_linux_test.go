package qemu_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/hypervisor/qemu"
)

// TestGuestRAMResident maps an anonymous region the way QEMU maps guest
// RAM, touches part of it, and finds exactly that much resident.
func TestGuestRAMResident(t *testing.T) {
	const size = 37 << 20 // a size no Go runtime mapping has
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	for i := 0; i < 8<<20; i += 4096 {
		mem[i] = 1
	}
	got, err := qemu.GuestRAMResident(os.Getpid(), size)
	if err != nil {
		t.Fatal(err)
	}
	if got != 8<<20 {
		t.Errorf("resident %d, want %d", got, 8<<20)
	}
	if _, err := qemu.GuestRAMResident(os.Getpid(), 12345<<20); err == nil {
		t.Error("no mapping of that size must be an error")
	}

	// An anonymous executable mapping is a JIT's code (TCG's translation
	// buffer); the test binary itself is file-backed.
	code, err := unix.Mmap(-1, 0, 4<<20, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Skipf("no executable anonymous mapping here: %v", err)
	}
	defer unix.Munmap(code)
	unix.Madvise(code, unix.MADV_NOHUGEPAGE)
	for i := 0; i < 3<<20; i += 4096 {
		code[i] = 0xc3
	}
	hm, err := qemu.HostMemoryOf(os.Getpid(), size>>20)
	if err != nil {
		t.Fatal(err)
	}
	if hm.GuestResident != 8<<20 || hm.CodeCache < 3<<20 || hm.Files <= 0 || hm.RSS < hm.GuestResident+hm.CodeCache+hm.Files {
		t.Errorf("host memory %+v", hm)
	}
	if hm.Overhead != hm.PSS-hm.GuestResident {
		t.Errorf("overhead %d, want PSS − guest RAM = %d", hm.Overhead, hm.PSS-hm.GuestResident)
	}
}
