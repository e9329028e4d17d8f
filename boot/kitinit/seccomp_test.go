//go:build linux

package kitinit

import (
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestSeccompFilter runs the default filter in x/net/bpf's interpreter
// over seccomp_data for allowed, denied and foreign-ABI syscalls.
func TestSeccompFilter(t *testing.T) {
	prog := seccompFilter(runtime.GOARCH)
	if prog == nil {
		t.Skipf("no filter for %s", runtime.GOARCH)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, f := range prog {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	run := func(nr uintptr, arch uint32) uint32 {
		// The interpreter loads big-endian words; the kernel loads
		// native ones. Lay the fields out for the interpreter.
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[0:], uint32(nr))
		binary.BigEndian.PutUint32(data[4:], arch)
		n, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(n)
	}
	arch := auditArch[runtime.GOARCH]
	eperm := uint32(retErrno | uint32(unix.EPERM))
	for _, c := range []struct {
		name string
		nr   uintptr
		want uint32
	}{
		{"read", unix.SYS_READ, retAllow},
		{"execve", unix.SYS_EXECVE, retAllow},
		{"finit_module", unix.SYS_FINIT_MODULE, eperm},
		{"init_module", unix.SYS_INIT_MODULE, eperm},
		{"mount", unix.SYS_MOUNT, eperm},
		{"unshare", unix.SYS_UNSHARE, eperm},
		{"ptrace", unix.SYS_PTRACE, eperm},
	} {
		if got := run(c.nr, arch); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
	if got := run(unix.SYS_READ, 0x40000003); got != retKillPrc {
		t.Errorf("foreign arch: %#x, want kill", got)
	}
	if runtime.GOARCH == "amd64" {
		if got := run(0x40000000|unix.SYS_READ, arch); got != eperm {
			t.Errorf("x32 read: %#x, want EPERM", got)
		}
	}
}

func TestParseHelperArgs(t *testing.T) {
	c, err := parseHelperArgs([]string{"root", "/containers/services/web/rootfs", "dir", "/app", "uid", "65534", "gid", "65534",
		"caps", "0,10", "readonly", "1", "newnet", "1", "bind", "rw", "/var/lib/web", "/data", "caps", "0,10", "--", "/usr/bin/web", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.root != "/containers/services/web/rootfs" || c.dir != "/app" || c.uid != 65534 || !c.caps[10] || !c.caps[0] || len(c.caps) != 2 ||
		!c.readonly || !c.newNet || c.unconfined || len(c.binds) != 1 || !c.binds[0].Writable || len(c.argv) != 2 {
		t.Errorf("parsed %+v", c)
	}
	// What the spawn side writes, the helper reads; no argument may hold
	// a NUL (exec refuses it).
	h := helperArgv(initproto.Exec{Path: "/usr/bin/web", Dir: "/app", UID: 7, GID: 8, Sandbox: &initproto.Sandbox{
		Root: "/r", Caps: []int{}, Binds: []initproto.Bind{{Source: "/a b", Target: "/c", Writable: true}, {Source: "/d", Target: "/e"}}}}, []string{"/usr/bin/web", "x"})
	for _, a := range h {
		if strings.ContainsRune(a, 0) {
			t.Errorf("argument %q holds a NUL", a)
		}
	}
	c, err = parseHelperArgs(h[1:])
	if err != nil || c.root != "/r" || c.dir != "/app" || c.uid != 7 || c.gid != 8 || len(c.caps) != 0 || len(c.binds) != 2 ||
		c.binds[0] != (initproto.Bind{Source: "/a b", Target: "/c", Writable: true}) || c.binds[1].Writable || strings.Join(c.argv, " ") != "/usr/bin/web x" {
		t.Errorf("round trip: %+v, %v", c, err)
	}
	if _, err := parseHelperArgs([]string{"root", "/x"}); err == nil {
		t.Error("no program: no error")
	}
}
