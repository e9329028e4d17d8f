//go:build linux

package kitinit

import (
	"errors"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// A sandboxed program is started through a helper: kitinit re-executes
// itself (/proc/self/exe) with argv[0] SandboxArg0 in new mount, pid, ipc
// and uts namespaces (and a network namespace on request), inside the
// program's cgroup. The helper, PID 1 of the new pid namespace, sets up the
// root (pivot_root into the image root), drops capabilities, sets
// no_new_privs, installs the seccomp filter and executes the program, which
// thus keeps the helper's pid: kitinit supervises, signals and reaps it
// like any other process, and its output goes through the same pipe.
// Go cannot run code between fork and exec, hence the helper.

// SandboxArg0 is the argv[0] that makes kitinit's Main run the helper.
const SandboxArg0 = "kitinit-sandbox"

// cgroupRoot is where kitinit mounts cgroup v2 (system.go).
const cgroupRoot = "/sys/fs/cgroup"

// sandboxSpawn rewrites a spawn of e into one of the helper: the path and
// argv to start, the clone flags, and the cgroup fd (-1: none) the caller
// closes after the start.
func sandboxSpawn(e initproto.Exec, argv []string, name string) (string, []string, *syscall.SysProcAttr, int, error) {
	sb := e.Sandbox
	h := helperArgv(e, argv)
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if sb.NewNet {
		flags |= unix.CLONE_NEWNET
	}
	sys := &syscall.SysProcAttr{Setsid: true, Cloneflags: flags}
	fd, err := serviceCgroup(name, sb)
	if err != nil {
		return "", nil, nil, -1, err
	}
	sys.UseCgroupFD, sys.CgroupFD = true, fd
	return "/proc/self/exe", h, sys, fd, nil
}

// helperArgv is the helper's argv for e (argv: the program's own).
func helperArgv(e initproto.Exec, argv []string) []string {
	sb := e.Sandbox
	dir := e.Dir
	if dir == "" {
		dir = "/"
	}
	h := []string{SandboxArg0,
		"root", sb.Root, "dir", dir,
		"uid", strconv.FormatUint(uint64(e.UID), 10), "gid", strconv.FormatUint(uint64(e.GID), 10)}
	caps := make([]string, len(sb.Caps))
	for i, c := range sb.Caps {
		caps[i] = strconv.Itoa(c)
	}
	h = append(h, "caps", strings.Join(caps, ","))
	if sb.Readonly {
		h = append(h, "readonly", "1")
	}
	if sb.NewNet {
		h = append(h, "newnet", "1")
	}
	if sb.Unconfined {
		h = append(h, "unconfined", "1")
	}
	for _, b := range sb.Binds {
		mode := "ro"
		if b.Writable {
			mode = "rw"
		}
		// Three arguments: a path may hold any byte but NUL, which no
		// argument may.
		h = append(h, "bind", mode, b.Source, b.Target)
	}
	h = append(h, "--", e.Path)
	return append(h, argv[1:]...)
}

// serviceCgroup makes (once) the cgroup of a sandboxed program,
// /sys/fs/cgroup/kitrun-NAME, with its limits, and opens it.
func serviceCgroup(name string, sb *initproto.Sandbox) (int, error) {
	// The controllers must be enabled in the parent for the child's
	// memory.max and cpu.max to exist.
	if sb.MemoryMax > 0 || sb.CPUMax > 0 {
		if err := os.WriteFile(cgroupRoot+"/cgroup.subtree_control", []byte("+memory +cpu +pids"), 0); err != nil {
			return -1, errors.New("cgroup controllers: " + err.Error())
		}
	}
	dir := cgroupRoot + "/kitrun-" + strings.ReplaceAll(name, "/", "_")
	if err := unix.Mkdir(dir, 0o755); err != nil && err != unix.EEXIST {
		return -1, errors.New("cgroup " + dir + ": " + err.Error())
	}
	if sb.MemoryMax > 0 {
		if err := os.WriteFile(dir+"/memory.max", []byte(strconv.FormatInt(sb.MemoryMax, 10)), 0); err != nil {
			return -1, errors.New("cgroup memory.max: " + err.Error())
		}
	}
	if sb.CPUMax > 0 {
		// cpu.max is "QUOTA PERIOD" in microseconds.
		v := strconv.Itoa(sb.CPUMax*100) + " 100000"
		if err := os.WriteFile(dir+"/cpu.max", []byte(v), 0); err != nil {
			return -1, errors.New("cgroup cpu.max: " + err.Error())
		}
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errors.New("cgroup " + dir + ": " + err.Error())
	}
	return fd, nil
}

// helperConfig is what the helper's argv says.
type helperConfig struct {
	root, dir  string
	uid, gid   int
	caps       map[int]bool
	readonly   bool
	newNet     bool
	unconfined bool
	binds      []initproto.Bind
	argv       []string
}

func parseHelperArgs(args []string) (*helperConfig, error) {
	c := &helperConfig{caps: map[int]bool{}, dir: "/"}
	for len(args) > 0 {
		if args[0] == "--" {
			c.argv = args[1:]
			break
		}
		if len(args) < 2 {
			return nil, errors.New("bad arguments")
		}
		if args[0] == "bind" {
			if len(args) < 4 {
				return nil, errors.New("bad bind")
			}
			c.binds = append(c.binds, initproto.Bind{Source: args[2], Target: args[3], Writable: args[1] == "rw"})
			args = args[4:]
			continue
		}
		k, v := args[0], args[1]
		args = args[2:]
		var err error
		switch k {
		case "root":
			c.root = v
		case "dir":
			c.dir = v
		case "uid":
			c.uid, err = strconv.Atoi(v)
		case "gid":
			c.gid, err = strconv.Atoi(v)
		case "caps":
			for _, s := range strings.Split(v, ",") {
				if s == "" {
					continue
				}
				n, e := strconv.Atoi(s)
				if e != nil {
					err = e
				}
				c.caps[n] = true
			}
		case "readonly":
			c.readonly = true
		case "newnet":
			c.newNet = true
		case "unconfined":
			c.unconfined = true
		default:
			return nil, errors.New("unknown argument " + k)
		}
		if err != nil {
			return nil, errors.New(k + ": " + err.Error())
		}
	}
	if len(c.argv) == 0 {
		return nil, errors.New("no program")
	}
	return c, nil
}

// SandboxMain is the helper: it confines itself as its arguments say and
// executes the program, or says why not on stderr (the service's output)
// and exits 127.
func SandboxMain(args []string) {
	// Capabilities, the bounding set, no_new_privs and seccomp are
	// per-thread, and exec keeps the calling thread's: do it all on one.
	runtime.LockOSThread()
	c, err := parseHelperArgs(args)
	if err == nil {
		err = c.enter()
	}
	os.Stderr.WriteString("kitinit-sandbox: " + err.Error() + "\n")
	os.Exit(127)
}

func (c *helperConfig) enter() error {
	step := func(what string, err error) error {
		if err != nil {
			return errors.New(what + ": " + err.Error())
		}
		return nil
	}
	// Nothing mounted here may reach kitinit's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return step("make mounts private", err)
	}
	if c.root != "" {
		if err := c.pivot(); err != nil {
			return err
		}
	} else if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		// The shared root's /proc would still show every process.
		return step("mount /proc", err)
	}
	if c.newNet {
		if err := linkUp("lo"); err != nil {
			return step("loopback", err)
		}
	}
	if err := unix.Chdir(c.dir); err != nil {
		return step("working directory "+c.dir, err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return step("no_new_privs", err)
	}
	if err := c.dropCaps(); err != nil {
		return err
	}
	if !c.unconfined {
		if err := installSeccomp(); err != nil {
			return step("seccomp", err)
		}
	}
	prog := c.argv[0]
	return step("exec "+prog, syscall.Exec(prog, c.argv, os.Environ()))
}

// pivot makes c.root the root. pivot_root refuses the initramfs's own
// root (it has no parent mount), so the helper first chroots into a bind
// mount of the root's parent directory, which does have one, and pivots
// from there; the old root is then detached, leaving nothing of the
// image's root reachable.
func (c *helperConfig) pivot() error {
	base := path.Dir(c.root)
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{base, base, "", unix.MS_BIND | unix.MS_REC, ""},
		{c.root, c.root, "", unix.MS_BIND | unix.MS_REC, ""},
		{"proc", c.root + "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", c.root + "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
		{"tmpfs", c.root + "/dev", "tmpfs", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0755,size=64k"},
		{"tmpfs", c.root + "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	}
	for _, m := range mounts {
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil {
			return errors.New("mount " + m.dst + ": " + err.Error())
		}
	}
	// The usual device nodes, and nothing else of /dev: bound from
	// kitinit's /dev, since nothing kitinit starts may create device nodes
	// (LockConsole drops CAP_MKNOD from the bounding set).
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		dst := c.root + "/dev/" + d
		fd, err := unix.Open(dst, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
		if err != nil {
			return errors.New("create /dev/" + d + ": " + err.Error())
		}
		unix.Close(fd)
		if err := unix.Mount("/dev/"+d, dst, "", unix.MS_BIND, ""); err != nil {
			return errors.New("bind /dev/" + d + ": " + err.Error())
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}} {
		unix.Symlink(l[0], c.root+"/dev/"+l[1])
	}
	unix.Mkdir(c.root+"/dev/shm", 0o1777)
	for _, b := range c.binds {
		if err := os.MkdirAll(b.Source, 0o755); err != nil {
			return errors.New("bind source " + b.Source + ": " + err.Error())
		}
		dst := c.root + b.Target
		if err := unix.Mount(b.Source, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return errors.New("bind " + b.Source + " on " + b.Target + ": " + err.Error())
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV)
		if !b.Writable {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount("", dst, "", flags, ""); err != nil {
			return errors.New("remount bind " + b.Target + ": " + err.Error())
		}
	}
	if err := unix.Chroot(base); err != nil {
		return errors.New("chroot " + base + ": " + err.Error())
	}
	rel := "/" + path.Base(c.root)
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.New("open old root: " + err.Error())
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(rel); err != nil {
		return errors.New("chdir " + rel + ": " + err.Error())
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return errors.New("pivot_root: " + err.Error())
	}
	// The old root is stacked on the new one: detach it.
	if err := unix.Fchdir(oldRoot); err != nil {
		return errors.New("fchdir old root: " + err.Error())
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return errors.New("old root private: " + err.Error())
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return errors.New("detach old root: " + err.Error())
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if c.readonly {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return errors.New("read-only root: " + err.Error())
		}
	}
	return nil
}

// dropCaps limits the bounding set to c.caps, becomes c.uid/c.gid, and
// leaves exactly c.caps effective, permitted and inheritable (and ambient
// for a non-root user, whose exec would otherwise drop them).
func (c *helperConfig) dropCaps() error {
	for n := 0; n <= initproto.LastCap; n++ {
		if c.caps[n] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil && err != unix.EINVAL {
			return errors.New("drop capability " + strconv.Itoa(n) + ": " + err.Error())
		}
	}
	if c.uid != 0 {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return errors.New("keepcaps: " + err.Error())
		}
	}
	if err := syscall.Setgroups(nil); err != nil {
		return errors.New("setgroups: " + err.Error())
	}
	if err := syscall.Setresgid(c.gid, c.gid, c.gid); err != nil {
		return errors.New("setgid: " + err.Error())
	}
	if err := syscall.Setresuid(c.uid, c.uid, c.uid); err != nil {
		return errors.New("setuid: " + err.Error())
	}
	// Only what kitinit itself may still hand on can be kept: it gave
	// CAP_MKNOD up for good (LockConsole), so a set naming it keeps the
	// rest.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var have [2]unix.CapUserData
	if err := unix.Capget(&hdr, &have[0]); err != nil {
		return errors.New("capget: " + err.Error())
	}
	var set [2]uint32
	var kept []int
	for n := range c.caps {
		if n <= initproto.LastCap && have[n/32].Permitted&(1<<(n%32)) != 0 {
			set[n/32] |= 1 << (n % 32)
			kept = append(kept, n)
		}
	}
	data := [2]unix.CapUserData{{Effective: set[0], Permitted: set[0], Inheritable: set[0]},
		{Effective: set[1], Permitted: set[1], Inheritable: set[1]}}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return errors.New("capset: " + err.Error())
	}
	if c.uid != 0 {
		for _, n := range kept {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0); err != nil {
				return errors.New("ambient capability " + strconv.Itoa(n) + ": " + err.Error())
			}
		}
	}
	return nil
}

// installSeccomp installs the default filter (seccompFilter).
func installSeccomp() error {
	prog := seccompFilter(runtime.GOARCH)
	if prog == nil {
		return errors.New("no filter for " + runtime.GOARCH + "; use seccomp: unconfined")
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fp)), 0, 0)
}
