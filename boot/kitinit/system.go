//go:build linux

package kitinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/entropy"
	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// System is what only the real PID 1 of a guest may do. Run calls it; tests
// pass a recording fake.
type System interface {
	// MountFilesystems mounts /proc, /sys, /dev and the rest, and makes sure
	// fds 0-2 are the console if there is one.
	MountFilesystems() error
	// LoadModule loads a kernel module from an absolute .ko path; a module
	// that is already loaded is not an error.
	LoadModule(path string) error
	// OpenChannel opens the event channel device, in raw mode if a tty,
	// for kitinit alone (see LinuxSystem.OpenChannel).
	OpenChannel(path string) (io.ReadWriter, error)
	// LockConsole keeps other programs from opening the console.
	LockConsole() error
	// UnpackSeed puts this boot's own files (a newc archive from the
	// source a value of initproto.ParamSeed names) over the image's.
	UnpackSeed(source string) error
	// Reseed applies a snapshot-restored VM's fresh state: entropy
	// (credited, then the CRNG reseeded), files, wall clock.
	Reseed(r initproto.Reseed) error
	SetHostname(name string) error
	LoopbackUp() error
	// ConfigureNetwork configures the first non-loopback interface and
	// returns a description such as "eth0 10.0.2.15/24 via 10.0.2.2".
	// What goes wrong later (a DHCP lease that cannot be renewed) goes to
	// report.
	ConfigureNetwork(n *initproto.Network, report func(error)) (string, error)
	// KillAll signals every process but kitinit.
	KillAll(sig unix.Signal)
	Sync()
	// Reboot powers off or restarts (a LINUX_REBOOT_CMD_*). The real one
	// does not return on success.
	Reboot(cmd int) error
}

// LinuxSystem is the real System.
type LinuxSystem struct{}

var _ System = LinuxSystem{}

type mountPoint struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   uint32
}

var mounts = []mountPoint{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", 0o755},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o755},
}

func (LinuxSystem) MountFilesystems() error {
	var errs []error
	for _, m := range mounts {
		if err := unix.Mkdir(m.target, m.mode); err != nil && err != unix.EEXIST {
			errs = append(errs, errors.New("mkdir "+m.target+": "+err.Error()))
			continue
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if err != nil && err != unix.EBUSY {
			errs = append(errs, errors.New("mount "+m.target+": "+err.Error()))
		}
		if m.target == "/dev" {
			fixStdio()
		}
	}
	if err := routePoweroffRequests(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// poweroffRequestArg is kitinit's argument when the kernel runs it as its
// poweroff_cmd.
const poweroffRequestArg = "--poweroff-request"

// routePoweroffRequests makes the kernel's orderly poweroff (which it runs
// when the platform asks for one without an input device: pseries' EPOW
// event from QEMU's system_powerdown) ask kitinit, so services stop
// cleanly. Its default, /sbin/poweroff, does not exist in a kitrun image,
// and the kernel then cuts the power at once.
func routePoweroffRequests() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("poweroff_cmd: %w", err)
	}
	if err := os.WriteFile("/proc/sys/kernel/poweroff_cmd", []byte(self+" "+poweroffRequestArg), 0); err != nil {
		return fmt.Errorf("poweroff_cmd: %w", err)
	}
	return nil
}

// fixStdio puts /dev/console on fds 0-2 if they are closed or /dev/null.
// Without a dev/console node in the initramfs the kernel starts init with no
// fds and the Go runtime opens /dev/null (which then must exist) for them;
// devtmpfs, just mounted, has the console.
func fixStdio() {
	var bad []int
	for fd := 0; fd < 3; fd++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil ||
			(st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == 1 && unix.Minor(st.Rdev) == 3) {
			bad = append(bad, fd)
		}
	}
	if len(bad) == 0 {
		return
	}
	c, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	for _, fd := range bad {
		unix.Dup3(c, fd, 0)
	}
	unix.Close(c)
}

// moduleName is the kernel's name for a module file: base name without
// .ko[.xz|.zst|.gz], '-' as '_'.
func moduleName(path string) string {
	n := filepath.Base(path)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

func (LinuxSystem) LoadModule(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(fd, "", flags); err != nil && err != unix.EEXIST {
		return err
	}
	return nil
}

// OpenChannel opens the channel device, waiting up to 3s for it to appear
// (virtio ports are created asynchronously), makes a tty raw, and makes the
// channel kitinit's alone: the tty refuses any further open (TIOCEXCL:
// only CAP_SYS_ADMIN overrides it) and its node is removed, so no task or
// service can write events that the host would believe.
func (LinuxSystem) OpenChannel(path string) (io.ReadWriter, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
		if err == nil {
			if rc, err := f.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) {
					makeRaw(int(fd))
					unix.IoctlSetInt(int(fd), unix.TIOCEXCL, 0)
				})
			}
			// A file system that cannot unlink the node (devpts) leaves
			// TIOCEXCL as the guard.
			os.Remove(path)
			return f, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.ENODEV) ||
			time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// makeRaw is cfmakeraw on fd, if it is a tty.
func makeRaw(fd int) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return // not a tty
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// LockConsole makes the console kitinit's alone from now on: guest
// programs reach it only through kitinit, which prefixes their lines with
// their name, so none can print a line the host would take for the
// kernel's (a panic) or for an event (where the channel shares the
// console). The console's tty refuses further opens (TIOCEXCL), its nodes
// (/dev/console and the device behind it) are removed, and no process
// started from now on may create device nodes again (CAP_MKNOD leaves the
// bounding set). kitinit's own descriptors stay open; programs it starts
// get pipes, never the console.
func (LinuxSystem) LockConsole() error {
	var errs []error
	for _, fd := range []int{0, 1, 2} {
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
				errs = append(errs, err)
			}
			break
		}
	}
	nodes := []string{"/dev/console"}
	if b, err := os.ReadFile("/sys/class/tty/console/active"); err == nil {
		for _, name := range strings.Fields(string(b)) {
			nodes = append(nodes, "/dev/"+name)
		}
	}
	for _, n := range nodes {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// The bounding set is per thread, and programs are started from any of
	// kitinit's: drop it on all of them.
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, unix.CAP_MKNOD, 0); e != 0 && e != unix.EPERM {
		errs = append(errs, fmt.Errorf("dropping CAP_MKNOD: %w", e))
	}
	return errors.Join(errs...)
}

func (LinuxSystem) SetHostname(name string) error { return unix.Sethostname([]byte(name)) }

func (LinuxSystem) LoopbackUp() error { return linkUp("lo") }

// linkUp sets IFF_UP on an interface.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// KillAll signals every process with a user address space but kitinit.
// Not kill(-1): that also reaches a kernel usermode helper before its exec
// (kernel.poweroff_cmd, which routePoweroffRequests points at kitinit),
// and the kernel answers the helper's failed start with an immediate
// power cut, before kitinit's shutdown is done (seen on pseries when the
// power button and the host's poweroff command arrive together). A task
// whose cmdline is empty is a kernel thread, such a helper or a zombie: a
// signal is no use to any of them.
func (LinuxSystem) KillAll(sig unix.Signal) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		unix.Kill(-1, sig)
		return
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == self {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err != nil || len(b) == 0 {
			continue
		}
		unix.Kill(pid, sig)
	}
}

func (LinuxSystem) Sync() { unix.Sync() }

func (LinuxSystem) Reboot(cmd int) error { return unix.Reboot(cmd) }

// UnpackSeed implements System: from QEMU's fw_cfg (or a cloud's instance
// metadata service, or Hyper-V's seed disk), the seed a disk boot cannot get appended to its
// initramfs. A machine given no seed has no entry: that is not an error.
func (LinuxSystem) UnpackSeed(source string) error {
	if initproto.SeedOverNetwork(source) {
		// A cloud's metadata service (see metaseed.go); kitinit calls
		// this once the network is configured.
		data, err := fetchSeed(source, initproto.MetadataAddr, metaseedWithin)
		if err != nil || data == nil {
			return err
		}
		return unpackArchive("/", data)
	}
	if source == initproto.SeedDisk {
		data, err := findSeedDisk("/sys/block", "/dev", diskseedWithin)
		if err != nil || len(data) == 0 { // none, or an empty seed disk
			return err
		}
		return unpackArchive("/", data)
	}
	if source != initproto.SeedFwCfg {
		return fmt.Errorf("unknown seed source %q", source)
	}
	// The fw_cfg module registers its entries as it probes the device.
	var data []byte
	deadline := time.Now().Add(2 * time.Second)
	for {
		var err error
		data, err = os.ReadFile(initproto.SeedFwCfgPath)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if _, derr := os.Stat("/sys/firmware/qemu_fw_cfg/by_name"); derr == nil || time.Now().After(deadline) {
			return nil // the device is there without a seed, or there is none
		}
		time.Sleep(5 * time.Millisecond)
	}
	return unpackArchive("/", data)
}

// Reseed implements System.
func (LinuxSystem) Reseed(r initproto.Reseed) error {
	var errs []error
	if err := entropy.Credit(r.Entropy); err != nil {
		errs = append(errs, err)
	} else if err := entropy.Reseed(); err != nil {
		errs = append(errs, err)
	}
	// The clock before the files, so that they carry this run's time.
	ts := unix.NsecToTimespec(r.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		errs = append(errs, fmt.Errorf("setting the clock: %w", err))
	}
	if err := unpackArchive("/", r.Files); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unpackArchive writes a newc archive's directories and regular files
// under root, with their modes and owners. Names may not leave root.
func unpackArchive(root string, data []byte) error {
	r := cpio.NewReader(bytes.NewReader(data))
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("seed archive: %w", err)
		}
		name := path.Clean("/" + rec.Name)
		if name == "/" || strings.Contains(rec.Name, "..") {
			continue
		}
		p := filepath.Join(root, name)
		perm := os.FileMode(rec.Mode & 0o7777)
		switch rec.Mode & cpio.TypeMask {
		case cpio.TypeDir:
			if err := os.MkdirAll(p, perm); err != nil {
				return err
			}
			os.Chmod(p, perm)
		case cpio.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			os.Remove(p)
			if err := os.WriteFile(p, rec.Data, perm); err != nil {
				return err
			}
			os.Chmod(p, perm)
		default:
			continue // the host sends directories and files only
		}
		os.Lchown(p, int(rec.UID), int(rec.GID))
	}
}
