//go:build linux

package kitinit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

func TestModuleName(t *testing.T) {
	for path, want := range map[string]string{
		"/lib/modules/6.1/kernel/drivers/net/virtio_net.ko": "virtio_net",
		"/m/virtio-pci.ko":       "virtio_pci",
		"/m/snd-hda-intel.ko.xz": "snd_hda_intel",
		"button.ko.zst":          "button",
	} {
		if got := moduleName(path); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(p, []byte("BOOT_IMAGE=/vmlinuz console=ttyS0 kitrun.channel=/dev/hvc1 kitrun.chanmods=virtio-pci,virtio_console, panic=-1 kitrun.latemods=pvpanic-mmio kitrun.seed=fwcfg\n"), 0o644)
	got := parseCmdline(p)
	want := cmdline{channel: "/dev/hvc1", chanMods: []string{"virtio_pci", "virtio_console"}, lateMods: []string{"pvpanic_mmio"}, seed: "fwcfg"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := parseCmdline(filepath.Join(t.TempDir(), "none")); !reflect.DeepEqual(got, cmdline{}) {
		t.Errorf("missing cmdline: %+v", got)
	}
}

func TestParseIP(t *testing.T) {
	if ip, err := parseIPv4("10.0.2.15"); err != nil || ip != [4]byte{10, 0, 2, 15} {
		t.Errorf("parseIPv4: %v %v", ip, err)
	}
	for _, bad := range []string{"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "01.2.3.4", "a.b.c.d"} {
		if _, err := parseIPv4(bad); err == nil {
			t.Errorf("parseIPv4(%q) succeeded", bad)
		}
	}
	six := map[string][16]byte{
		"::1":             {15: 1},
		"::":              {},
		"fe80::1:2":       {0: 0xfe, 1: 0x80, 13: 1, 15: 2},
		"1:2:3:4:5:6:7:8": {1: 1, 3: 2, 5: 3, 7: 4, 9: 5, 11: 6, 13: 7, 15: 8},
		"::ffff:10.0.0.1": {10: 0xff, 11: 0xff, 12: 10, 15: 1},
	}
	for s, want := range six {
		if ip, err := parseIPv6(s); err != nil || ip != want {
			t.Errorf("parseIPv6(%q) = %v, %v", s, ip, err)
		}
	}
	for _, bad := range []string{"", ":", "1:2:3:4:5:6:7", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8"} {
		if _, err := parseIPv6(bad); err == nil {
			t.Errorf("parseIPv6(%q) succeeded", bad)
		}
	}
	if ip, bits, err := parseCIDR4("10.0.2.15/24"); err != nil || bits != 24 || ip != [4]byte{10, 0, 2, 15} {
		t.Errorf("parseCIDR4: %v %v %v", ip, bits, err)
	}
	for _, bad := range []string{"10.0.2.15", "10.0.2.15/33", "fe80::1/64", "10.0.2/8"} {
		if _, _, err := parseCIDR4(bad); err == nil {
			t.Errorf("parseCIDR4(%q) succeeded", bad)
		}
	}
}

func TestParseTCPTarget(t *testing.T) {
	for in, want := range map[string]string{
		"8080":           "127.0.0.1:8080",
		"localhost:80":   "127.0.0.1:80",
		"10.0.2.15:22":   "10.0.2.15:22",
		"[::1]:8443":     "[::1]:8443",
		":9000":          "127.0.0.1:9000",
		"127.0.0.1:1234": "127.0.0.1:1234",
	} {
		if _, got, err := parseTCPTarget(in); err != nil || got != want {
			t.Errorf("parseTCPTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "http", "host:80", "1.2.3.4:0", "1.2.3.4:70000", "::1:80"} {
		if _, _, err := parseTCPTarget(bad); err == nil {
			t.Errorf("parseTCPTarget(%q) succeeded", bad)
		}
	}
}

func TestParseProbeErrors(t *testing.T) {
	for _, r := range []initproto.Ready{
		{},
		{TCP: "80", File: "/x"},
		{Log: "(unclosed"},
		{TCP: "example.com:80"},
	} {
		if _, err := parseProbe(&r); err == nil {
			t.Errorf("parseProbe(%+v) succeeded", r)
		}
	}
	p, err := parseProbe(&initproto.Ready{File: "/x"})
	if err != nil || p.timeout != defaultProbeTimeout || p.interval != defaultProbeInterval {
		t.Errorf("defaults: %+v %v", p, err)
	}
}

func TestBadProbeFailsService(t *testing.T) {
	cfg := &initproto.Config{Services: []initproto.Service{{Name: "bad", Exec: sh("exec sleep 1000"),
		Ready: &initproto.Ready{Log: "(unclosed"}}}}
	h := start(t, cfg)
	if ev := h.wait(initproto.EvServiceFailed, "bad"); !strings.HasPrefix(ev.Detail, "bad ready probe: ") {
		t.Errorf("detail %q", ev.Detail)
	}
}

func TestHumanLine(t *testing.T) {
	for _, c := range []struct {
		ev   initproto.Event
		want string
	}{
		{initproto.Event{Kind: initproto.EvServiceReady, Name: "web", Uptime: 0.8123}, "kitinit: service web ready (0.812s)\n"},
		{initproto.Event{Kind: initproto.EvTaskFailed, Name: "db", Detail: "exit status 3", Uptime: 2}, "kitinit: task db failed: exit status 3 (2.000s)\n"},
		{initproto.Event{Kind: initproto.EvMemory, Data: map[string]int64{"mem_total": 512 << 20, "mem_available": 400 << 20}, Uptime: 1},
			"kitinit: memory: total 512 MiB, available 400 MiB (1.000s)\n"},
	} {
		if got := humanLine(c.ev); got != c.want {
			t.Errorf("humanLine = %q, want %q", got, c.want)
		}
	}
}

func TestOutputKeepsLastLines(t *testing.T) {
	o := &output{name: "x", con: &console{}}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go pump(r, o, nil, done)
	for i := 0; i < 30; i++ {
		w.WriteString("line " + itoa(i) + "\r\n")
	}
	w.WriteString(strings.Repeat("y", 5000) + "\nno newline")
	w.Close()
	<-done
	got := o.last()
	if len(got) != keepLines || got[0] != "line 13" || got[16] != "line 29" ||
		len(got[17]) != 4096 || len(got[18]) != 5000-4096 || got[19] != "no newline" {
		t.Errorf("last lines: %d, %q ... %q", len(got), got[0], got[len(got)-1])
	}
}

func TestReaperManyChildren(t *testing.T) {
	r := SharedReaper()
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := i % 7
			pid, exit, err := r.Start("/bin/sh", []string{"sh", "-c", "exit " + itoa(code)}, &syscall.ProcAttr{})
			if err != nil {
				t.Error(err)
				return
			}
			select {
			case ws := <-exit:
				if exitCode(ws) != code || describeExit(ws) != "exit status "+itoa(code) {
					t.Errorf("pid %d: %v, want exit %d", pid, describeExit(ws), code)
				}
			case <-time.After(waitLong):
				t.Errorf("pid %d: no exit status", pid)
			}
		}()
	}
	wg.Wait()
	pid, exit, err := r.Start("/bin/sh", []string{"sh", "-c", "kill -KILL $$"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if ws := <-exit; exitCode(ws) != -9 || describeExit(ws) != "killed by SIGKILL" {
		t.Errorf("pid %d: %v", pid, describeExit(ws))
	}
	if _, _, err := r.Start("/nonexistent", []string{"x"}, &syscall.ProcAttr{}); err == nil {
		t.Error("started a nonexistent program")
	}
}

func TestOpenChannelMakesTTYRaw(t *testing.T) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skip("no ptmx:", err)
	}
	defer unix.Close(m)
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := LinuxSystem{}.OpenChannel("/dev/pts/" + itoa(n))
	if err != nil {
		t.Skip("cannot open the pty:", err)
	}
	f := rw.(*os.File)
	defer f.Close()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// Exclusive: only CAP_SYS_ADMIN may open it again.
	if excl, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGEXCL); err != nil || excl != 1 {
		t.Errorf("TIOCGEXCL = %d, %v; want exclusive mode", excl, err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 || tio.Oflag&unix.OPOST != 0 ||
		tio.Iflag&unix.ICRNL != 0 || tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cc[unix.VMIN] != 1 {
		t.Errorf("not raw: %+v", tio)
	}
	// Raw: "\n" written is not turned into "\r\n".
	f.Write([]byte("@kitrun x\n"))
	buf := make([]byte, 64)
	k, _ := unix.Read(m, buf)
	if string(buf[:k]) != "@kitrun x\n" {
		t.Errorf("read %q", buf[:k])
	}
}

func TestOpenChannelWaitsForDevice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ttyX")
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(p, nil, 0o644)
	}()
	rw, err := LinuxSystem{}.OpenChannel(p)
	if err != nil {
		t.Fatal(err)
	}
	rw.(*os.File).Close()
	// The node is gone: no guest program can open the channel after
	// kitinit (see TestOpenChannelMakesTTYRaw for the tty's exclusive mode).
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("channel node still there after OpenChannel: %v", err)
	}
}

func TestWaitNIC(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lo"), 0o755)
	os.MkdirAll(filepath.Join(dir, "dummy0"), 0o755)
	go func() {
		time.Sleep(30 * time.Millisecond)
		os.MkdirAll(filepath.Join(dir, "eth0"), 0o755)
		os.Symlink("../../devices/pci0000:00/0000:00:02.0", filepath.Join(dir, "eth0", "device"))
	}()
	if nic, err := waitNIC(dir, waitLong); err != nil || nic != "eth0" {
		t.Errorf("waitNIC = %q, %v", nic, err)
	}
	os.RemoveAll(filepath.Join(dir, "eth0"))
	if nic, err := waitNIC(dir, 20*time.Millisecond); err != nil || nic != "dummy0" {
		t.Errorf("waitNIC without a device = %q, %v", nic, err)
	}
	os.RemoveAll(filepath.Join(dir, "dummy0"))
	if _, err := waitNIC(dir, 20*time.Millisecond); err == nil {
		t.Error("waitNIC found a NIC in an empty directory")
	}
}

// TestNetlink configures loopback in a fresh network namespace through
// the same code as the NIC: link up, a static layout, then a lease that
// replaces it the way clouds hand them out (a /32, a gateway outside it, a
// classless route on the link).
func TestNetlink(t *testing.T) {
	type result struct {
		route, addr, addr2 string
		err                error
		skip               string
	}
	res := make(chan result, 1)
	go func() {
		// This thread moves to a new network namespace; it is never
		// unlocked, so the runtime throws it away afterwards.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			res <- result{skip: "cannot create a network namespace: " + err.Error()}
			return
		}
		var r result
		report := func(err error) { r.err = err }
		static := &lease{addr: [4]byte{10, 1, 2, 3}, bits: 24, routes: []route{{gateway: [4]byte{10, 1, 2, 1}}}}
		cloud := &lease{addr: [4]byte{10, 9, 9, 9}, bits: 32, routes: []route{
			{dst: [4]byte{10, 9, 0, 0}, bits: 16},
			{gateway: [4]byte{10, 9, 0, 1}},
		}}
		if r.err = linkUp("lo"); r.err == nil {
			r.err = applyLease("lo", 1, nil, static, report)
		}
		b, _ := os.ReadFile("/proc/thread-self/net/fib_trie")
		r.addr = string(b)
		if r.err == nil {
			r.err = applyLease("lo", 1, static, cloud, report)
		}
		b, _ = os.ReadFile("/proc/thread-self/net/route")
		r.route = string(b)
		b, _ = os.ReadFile("/proc/thread-self/net/fib_trie")
		r.addr2 = string(b)
		res <- r
	}()
	r := <-res
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.addr, "10.1.2.3") {
		t.Errorf("no address 10.1.2.3:\n%s", r.addr)
	}
	if strings.Contains(r.addr2, "10.1.2.3") || !strings.Contains(r.addr2, "10.9.9.9") {
		t.Errorf("the second lease must replace 10.1.2.3 with 10.9.9.9:\n%s", r.addr2)
	}
	// Destinations and gateways in little-endian hex; flags 0003 is
	// up+gateway, 0001 up (on the link).
	for _, want := range []string{
		"lo\t00000000\t0100090A\t0003", // default via 10.9.0.1, on the link although outside the /32
		"lo\t0000090A\t00000000\t0001", // 10.9.0.0/16 on the link
	} {
		if !strings.Contains(r.route, want) {
			t.Errorf("no route %q:\n%s", want, r.route)
		}
	}
}

func TestMainRefusesWhenNotPID1(t *testing.T) {
	exe, _ := os.Executable()
	r, w, _ := os.Pipe()
	pid, exit, err := SharedReaper().Start(exe, []string{exe}, &syscall.ProcAttr{
		Env: []string{helperEnv + "=main"}, Files: []uintptr{0, w.Fd(), w.Fd()}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 512)
	n, _ := r.Read(out)
	ws := <-exit
	if exitCode(ws) != 2 || !strings.Contains(string(out[:n]), "must be PID 1") {
		t.Errorf("pid %d: %s, output %q", pid, describeExit(ws), out[:n])
	}
}

// TestUnpackSeed writes a seed archive's directories and files, with their
// modes, over what is there; names that would leave the root are skipped.
func TestUnpackSeed(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/kitrun/ssh"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/kitrun/ssh/host_key"), []byte("old"), 0o644)
	var buf bytes.Buffer
	if err := cpio.WriteTree(&buf, []cpio.Record{
		cpio.File("/etc/kitrun/ssh/host_key", []byte("per boot"), 0o600),
		cpio.File("/root/.ssh/authorized_keys", []byte("key"), 0o644),
		cpio.Dir("/root", 0o700),
	}); err != nil {
		t.Fatal(err)
	}
	if err := unpackArchive(root, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/kitrun/ssh/host_key"))
	st, _ := os.Stat(filepath.Join(root, "etc/kitrun/ssh/host_key"))
	if err != nil || string(b) != "per boot" || st.Mode().Perm() != 0o600 {
		t.Errorf("host_key: %q %v %v", b, st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(root, "root")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("/root: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "root/.ssh/authorized_keys")); string(b) != "key" {
		t.Errorf("authorized_keys %q", b)
	}
}

func TestIfIndex(t *testing.T) {
	if i, err := ifIndex("lo", time.Second); err != nil || i != 1 {
		t.Errorf("ifIndex(lo) = %d, %v", i, err)
	}
	if _, err := ifIndex("nosuchnic0", 50*time.Millisecond); err == nil {
		t.Error("an interface that never appears must be an error")
	}
}
