//go:build linux

// Command escape tries to break out of kitinit's sandbox, for the sandbox
// tests: see other processes, write its root, load a kernel module, use
// capabilities a default sandbox drops, mount, and reach the initramfs's
// own root. It prints one line per attempt, then "escape: contained" when
// every attempt failed or "escape: ESCAPED (n)" when any succeeded, and
// stays up (a service) either way. Run unsandboxed it must report
// escapes: that is the check that the attempts themselves work.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	escaped := 0
	report := func(what string, err error, ok bool) {
		state := "blocked"
		if !ok {
			state = "ESCAPED"
			escaped++
		}
		fmt.Printf("escape: %s: %s (%v)\n", what, state, err)
	}

	// Other processes: a new pid namespace and /proc show only ours.
	var others []int
	ents, err := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, perr := strconv.Atoi(e.Name()); perr == nil && pid != os.Getpid() {
			others = append(others, pid)
		}
	}
	report("see other processes", fmt.Errorf("pid %d, others %v, readdir %v", os.Getpid(), others, err), len(others) == 0 && err == nil)

	// The root file system: read-only.
	err = os.WriteFile("/escape-was-here", []byte("x"), 0o644)
	report("write the root", err, errors.Is(err, unix.EROFS))

	// Kernel modules: no CAP_SYS_MODULE, and seccomp says EPERM first.
	err = unix.InitModule([]byte{0}, "")
	report("init_module", err, errors.Is(err, unix.EPERM))
	f, _ := os.Open("/dev/null")
	err = unix.FinitModule(int(f.Fd()), "", 0)
	report("finit_module", err, errors.Is(err, unix.EPERM))

	// A dropped capability: CAP_SYS_ADMIN (sethostname).
	err = unix.Sethostname([]byte("escaped"))
	report("sethostname (CAP_SYS_ADMIN)", err, errors.Is(err, unix.EPERM))

	// A dropped capability: CAP_NET_ADMIN (take the loopback down).
	err = loDown()
	report("lo down (CAP_NET_ADMIN)", err, errors.Is(err, unix.EPERM))

	// Mounting: a new proc over /proc would undo the pid namespace view.
	err = unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "")
	report("mount", err, errors.Is(err, unix.EPERM))

	// The initramfs root (kitinit is /init there) must be out of reach.
	_, err = os.Stat("/init")
	report("reach the image root (/init)", err, errors.Is(err, os.ErrNotExist))

	if escaped == 0 {
		fmt.Println("escape: contained")
	} else {
		fmt.Printf("escape: ESCAPED (%d)\n", escaped)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func loDown() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	// Write the flags it has: a no-op that still needs CAP_NET_ADMIN.
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
