//go:build linux

package kitinit

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

func TestBootEventOrder(t *testing.T) {
	port := freePort(t)
	cfg := &initproto.Config{
		Hostname: "guest",
		Modules:  []string{"/m/virtio_ring.ko", "/m/e1000.ko", "/m/af_packet.ko"},
		Available: map[string]initproto.Module{
			"virtio_ring":    {Path: "/m/virtio_ring.ko"},
			"virtio_pci":     {Path: "/m/virtio-pci.ko", Depends: []string{"virtio_ring"}},
			"virtio_console": {Path: "/m/virtio_console.ko.xz", Depends: []string{"virtio_ring"}},
			"e1000":          {Path: "/m/e1000.ko"},
			"af_packet":      {Path: "/m/af_packet.ko"},
			"pvpanic":        {Path: "/m/pvpanic.ko"},
			"pvpanic_mmio":   {Path: "/m/pvpanic-mmio.ko", Depends: []string{"pvpanic", "virtio_console"}},
		},
		LateModules: []string{"/m/evdev.ko", "/m/button.ko"},
		Network:     &initproto.Network{Mode: initproto.NetworkStatic, Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3"},
		Onboot: []initproto.Task{
			{Name: "first", Exec: sh("echo one; echo uno"), Timeout: dur(10 * time.Second)},
			{Name: "second", Exec: sh("echo two >&2"), Timeout: dur(10 * time.Second)},
		},
		Services: []initproto.Service{
			{Name: "web", Exec: helper(t, "tcp-listen", "127.0.0.1:"+strconv.Itoa(port), "200ms"),
				Restart: initproto.Restart{Policy: initproto.RestartOnFailure},
				Ready:   &initproto.Ready{TCP: strconv.Itoa(port), Timeout: dur(20 * time.Second), Interval: dur(10 * time.Millisecond)}},
			{Name: "logger", Exec: sh(`echo starting; sleep 0.2; echo "listening on 42"; exec sleep 1000`),
				Ready: &initproto.Ready{Log: `listening on [0-9]+`, Timeout: dur(20 * time.Second)}},
		},
	}
	h := start(t, cfg, func(o *Options) { o.StartUptime = 0.125 })
	h.wait(initproto.EvAllReady, "")

	h.before("init-start", "modules-loaded", "network-up", "task-done first", "task-done second",
		"service-started web", "service-ready web", "all-ready")
	h.before("task-done second", "service-started logger", "service-ready logger", "all-ready")
	if k := h.kinds(); k[0] != "init-start" || k[len(k)-1] != "all-ready" {
		t.Errorf("events: %v", k)
	}
	h.mu.Lock()
	first, second := h.seen[0], h.seen[1]
	h.mu.Unlock()
	if first.Uptime != 0.125 {
		t.Errorf("init-start uptime %v, want the start uptime 0.125", first.Uptime)
	}
	if second.Uptime < first.Uptime {
		t.Errorf("uptime went backwards: %v then %v", first.Uptime, second.Uptime)
	}

	// The system calls. The channel path (machine modules, each after its
	// dependencies, then the channel) and the boot path (the image's
	// modules in order, loopback, network) run side by side; each keeps
	// its own order, and the late modules come last.
	// The command line's late modules (kitrun.latemods) come after the
	// channel too, dependencies first, and what the channel's modules
	// loaded already is not loaded again.
	eventually(t, "late modules", func() bool {
		c := h.sys.Calls()
		return slices.Contains(c, "module /m/button.ko") && slices.Contains(c, "module /m/pvpanic-mmio.ko")
	})
	got := h.sys.Calls()
	if i := slices.Index(got, "module /m/virtio_console.ko.xz"); i < 0 || slices.Contains(got[i+1:], got[i]) {
		t.Errorf("virtio_console not loaded exactly once: %q", got)
	}
	for _, order := range [][]string{
		{"mount", "hostname guest", "module /m/virtio_ring.ko", "module /m/virtio_console.ko.xz", "module /m/virtio-pci.ko", "channel /dev/ttyS1"},
		{"mount", "hostname guest", "module /m/e1000.ko", "module /m/af_packet.ko", "lo", "network 10.0.2.15/24"},
		{"channel /dev/ttyS1", "module /m/evdev.ko", "module /m/button.ko"},
		{"network 10.0.2.15/24", "module /m/evdev.ko"},
		{"channel /dev/ttyS1", "module /m/pvpanic.ko", "module /m/pvpanic-mmio.ko"},
	} {
		if !inOrder(got, order) {
			t.Errorf("system calls %q do not hold %q in order", got, order)
		}
	}

	// Console: human lines and prefixed output; log files.
	eventually(t, "console lines", func() bool {
		c := h.console.String()
		return strings.Contains(c, "[first] one\n") && strings.Contains(c, "[second] two\n") &&
			strings.Contains(c, "[logger] listening on 42\n") && strings.Contains(c, "kitinit: service web ready (")
	})
	if c := h.console.String(); !strings.Contains(c, "kitinit: network up: eth0 10.0.2.15/24 via 10.0.2.2 (") {
		t.Errorf("console lacks network line:\n%s", c)
	}
	for name, want := range map[string]string{"first": "one\nuno\n", "second": "two\n"} {
		b, err := os.ReadFile(filepath.Join(h.logDir, name+".log"))
		if err != nil || string(b) != want {
			t.Errorf("%s.log = %q, %v; want %q", name, b, err, want)
		}
	}
	eventually(t, "web log", func() bool {
		b, _ := os.ReadFile(filepath.Join(h.logDir, "web.log"))
		return strings.HasPrefix(string(b), "listening on 127.0.0.1:")
	})

	h.send("poweroff")
	h.waitDone()
	if n := h.count("all-ready", ""); n != 1 {
		t.Errorf("%d all-ready events", n)
	}
	h.before("all-ready", "shutdown", "shutdown-done")
}

func TestOnbootFailureStopsTheRest(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	cfg := &initproto.Config{
		Onboot: []initproto.Task{
			{Name: "setup", Exec: sh("echo preparing; echo oops >&2; exit 3")},
			{Name: "after", Exec: sh("touch " + marker)},
		},
		Services: []initproto.Service{{Name: "svc", Exec: sh("touch " + marker + "; exec sleep 1000")}},
	}
	h := start(t, cfg)
	ev := h.wait(initproto.EvTaskFailed, "setup")
	if ev.Status == nil || *ev.Status != 3 || ev.Detail != "exit status 3" ||
		!slices.Equal(ev.Log, []string{"preparing", "oops"}) {
		t.Errorf("task-failed: %+v (status %v)", ev, ev.Status)
	}
	// Still serving commands.
	h.send("memory")
	h.wait(initproto.EvMemory, "")
	h.send("poweroff")
	if cmd := h.waitDone(); cmd != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Errorf("reboot cmd %#x", cmd)
	}
	for _, k := range h.kinds() {
		if strings.Contains(k, "after") || strings.HasPrefix(k, "service") || k == "all-ready" {
			t.Errorf("unexpected event %q after a failed onboot task", k)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a later task or a service ran")
	}
}

func TestOnbootTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	cfg := &initproto.Config{
		Onboot: []initproto.Task{{Name: "slow", Timeout: dur(300 * time.Millisecond),
			Exec: sh("sleep 1000 & echo $! > " + pidfile + "; echo waiting; wait")}},
	}
	h := start(t, cfg)
	ev := h.wait(initproto.EvTaskFailed, "slow")
	if ev.Detail != "timed out after 300ms" || ev.Status == nil || *ev.Status != -9 {
		t.Errorf("task-failed: detail %q status %v", ev.Detail, ev.Status)
	}
	if !slices.Contains(ev.Log, "waiting") {
		t.Errorf("log %q", ev.Log)
	}
	grandchild := readPid(t, pidfile)
	eventually(t, "the task's background sleep killed and reaped", func() bool { return gone(grandchild) })
}

func TestRestartOnFailureWithBackoff(t *testing.T) {
	cfg := &initproto.Config{Services: []initproto.Service{{
		Name: "crash", Exec: sh("echo attempt; echo bad >&2; exit 1"),
		Restart: initproto.Restart{Policy: initproto.RestartOnFailure, Backoff: dur(50 * time.Millisecond),
			MaxBackoff: dur(80 * time.Millisecond), MaxRestarts: 3},
	}}}
	h := start(t, cfg)
	h.wait(initproto.EvServiceStart, "crash")
	for i, want := range []string{"50ms", "80ms", "80ms"} {
		ev := h.wait(initproto.EvServiceExit, "crash")
		if ev.Status == nil || *ev.Status != 1 || ev.Detail != "exit status 1; restarting in "+want {
			t.Errorf("exit %d: %q status %v", i, ev.Detail, ev.Status)
		}
		if ev := h.wait(initproto.EvServiceStart, "crash"); ev.Detail != "restart "+strconv.Itoa(i+1) {
			t.Errorf("restart detail %q", ev.Detail)
		}
	}
	ev := h.wait(initproto.EvServiceFailed, "crash")
	if ev.Status == nil || *ev.Status != 1 || ev.Detail != "exit status 1 (gave up after 3 restarts)" {
		t.Errorf("service-failed: %q status %v", ev.Detail, ev.Status)
	}
	if want := []string{"attempt", "bad", "attempt", "bad", "attempt", "bad", "attempt", "bad"}; !slices.Equal(ev.Log, want) {
		t.Errorf("log %q, want %q", ev.Log, want)
	}
	h.send("poweroff")
	h.waitDone()
	if n := h.count("service-started", "crash"); n != 4 {
		t.Errorf("%d starts, want 4", n)
	}
}

func TestOnFailureDoesNotRestartAfterSuccess(t *testing.T) {
	cfg := &initproto.Config{Services: []initproto.Service{{
		Name: "oneshot", Exec: sh("echo done"),
		Restart: initproto.Restart{Policy: initproto.RestartOnFailure, Backoff: dur(10 * time.Millisecond)},
	}}}
	h := start(t, cfg)
	ev := h.wait(initproto.EvServiceFailed, "oneshot")
	if ev.Status == nil || *ev.Status != 0 || ev.Detail != "exit status 0" {
		t.Errorf("service-failed: %q %v", ev.Detail, ev.Status)
	}
	if n := h.count("service-started", "oneshot"); n != 1 {
		t.Errorf("%d starts", n)
	}
}

func TestNeverPolicy(t *testing.T) {
	cfg := &initproto.Config{Services: []initproto.Service{{
		Name: "once", Exec: sh("echo bye; exit 7"),
		Restart: initproto.Restart{Policy: initproto.RestartNever, Backoff: dur(10 * time.Millisecond)},
	}}}
	h := start(t, cfg)
	ev := h.wait(initproto.EvServiceFailed, "once")
	if ev.Status == nil || *ev.Status != 7 || !slices.Equal(ev.Log, []string{"bye"}) {
		t.Errorf("service-failed: %+v", ev)
	}
	h.send("poweroff")
	h.waitDone()
	if n := h.count("service-started", "once"); n != 1 {
		t.Errorf("%d starts", n)
	}
	if n := h.count("service-exited", "once"); n != 0 {
		t.Errorf("%d service-exited events", n)
	}
}

func TestAlwaysPolicyRestartsAfterExit0(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cfg := &initproto.Config{Services: []initproto.Service{{
		Name: "loop", Exec: sh("touch " + ready + "; sleep 0.1; exit 0"),
		Restart: initproto.Restart{Policy: initproto.RestartAlways, Backoff: dur(20 * time.Millisecond), MaxRestarts: 2},
		Ready:   &initproto.Ready{File: ready, Timeout: dur(20 * time.Second)},
	}}}
	h := start(t, cfg)
	for i := 0; i < 2; i++ {
		if ev := h.wait(initproto.EvServiceExit, "loop"); ev.Status == nil || *ev.Status != 0 {
			t.Errorf("exit status %v", ev.Status)
		}
	}
	h.wait(initproto.EvServiceFailed, "loop")
	h.send("poweroff")
	h.waitDone()
	if n := h.count("service-started", "loop"); n != 3 {
		t.Errorf("%d starts, want 3", n)
	}
	// Ready once: a restarted service that was ready is not probed again.
	if r, a := h.count("service-ready", "loop"), h.count("all-ready", ""); r != 1 || a != 1 {
		t.Errorf("%d service-ready, %d all-ready; want 1 each: %v", r, a, h.kinds())
	}
}

func TestServiceNeverReadyIsProbedAgainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	marker, ready := filepath.Join(dir, "marker"), filepath.Join(dir, "ready")
	cfg := &initproto.Config{Services: []initproto.Service{{
		Name:    "flaky",
		Exec:    sh("if [ -e " + marker + " ]; then touch " + ready + "; exec sleep 1000; fi; touch " + marker + "; exit 1"),
		Restart: initproto.Restart{Policy: initproto.RestartOnFailure, Backoff: dur(10 * time.Millisecond)},
		Ready:   &initproto.Ready{File: ready, Timeout: dur(20 * time.Second)},
	}}}
	h := start(t, cfg)
	h.wait(initproto.EvAllReady, "")
	h.before("service-started flaky", "service-exited flaky", "service-ready flaky", "all-ready")
	if h.count("service-ready", "flaky") != 1 || h.count("service-started", "flaky") != 2 {
		t.Errorf("events: %v", h.kinds())
	}
}

func TestProbes(t *testing.T) {
	port := freePort(t)
	closed := freePort(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	file := filepath.Join(dir, "file")
	execOK := filepath.Join(dir, "exec-ok")
	fast := dur(400 * time.Millisecond)
	long := dur(20 * time.Second)
	sleeper := sh("exec sleep 1000")
	cases := []struct {
		name  string
		exec  initproto.Exec
		ready initproto.Ready
		fail  string // expected detail of service-failed; "" = ready
	}{
		{"tcp-ok", helper(t, "tcp-listen", "127.0.0.1:"+strconv.Itoa(port), "100ms"),
			initproto.Ready{TCP: "127.0.0.1:" + strconv.Itoa(port), Timeout: long}, ""},
		{"tcp-timeout", sleeper, initproto.Ready{TCP: strconv.Itoa(closed), Timeout: fast},
			"ready probe tcp 127.0.0.1:" + strconv.Itoa(closed) + " did not succeed within 400ms"},
		{"unix-ok", helper(t, "unix-listen", sock, "100ms"), initproto.Ready{Unix: sock, Timeout: long}, ""},
		{"unix-timeout", sleeper, initproto.Ready{Unix: filepath.Join(dir, "none.sock"), Timeout: fast},
			"ready probe unix " + filepath.Join(dir, "none.sock") + " did not succeed within 400ms"},
		{"file-ok", sh("sleep 0.1; touch " + file + "; exec sleep 1000"), initproto.Ready{File: file, Timeout: long}, ""},
		{"file-timeout", sleeper, initproto.Ready{File: filepath.Join(dir, "never"), Timeout: fast},
			"ready probe file " + filepath.Join(dir, "never") + " did not succeed within 400ms"},
		{"exec-ok", sh("sleep 0.1; touch " + execOK + "; exec sleep 1000"),
			initproto.Ready{Exec: []string{"test", "-e", execOK}, Timeout: long}, ""},
		{"exec-timeout", sleeper, initproto.Ready{Exec: []string{"false"}, Timeout: fast},
			"ready probe exec false did not succeed within 400ms"},
		// One attempt that would outlive the timeout is cut short.
		{"exec-hangs", sleeper, initproto.Ready{Exec: []string{"sleep", "1000"}, Timeout: fast},
			"ready probe exec sleep 1000 did not succeed within 400ms"},
		// The line comes before the probe could possibly start.
		{"log-ok", sh("echo ready now; exec sleep 1000"), initproto.Ready{Log: "^ready", Timeout: long}, ""},
		{"log-timeout", sh("echo not yet; exec sleep 1000"), initproto.Ready{Log: "^ready", Timeout: fast},
			`ready probe log "^ready" did not succeed within 400ms`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ready := c.ready
			ready.Interval = dur(10 * time.Millisecond)
			cfg := &initproto.Config{Services: []initproto.Service{{Name: c.name, Exec: c.exec, Ready: &ready}}}
			h := start(t, cfg)
			if c.fail == "" {
				h.wait(initproto.EvServiceReady, c.name)
				h.wait(initproto.EvAllReady, "")
				return
			}
			ev := h.wait(initproto.EvServiceFailed, c.name)
			if ev.Detail != c.fail || ev.Status != nil {
				t.Errorf("service-failed detail %q status %v, want %q", ev.Detail, ev.Status, c.fail)
			}
			// The service keeps running.
			h.send("memory")
			if ev := h.wait(initproto.EvMemory, ""); ev.Data["rss_"+c.name] <= 0 {
				t.Errorf("service not running after its probe timed out: %v", ev.Data)
			}
			h.send("poweroff")
			h.waitDone()
			if h.count("all-ready", "") != 0 || h.count("service-ready", c.name) != 0 {
				t.Errorf("events: %v", h.kinds())
			}
		})
	}
}

func TestOrphansAreReaped(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	// The background subshell outlives its parent: it is re-parented to us
	// (PID 1 in the guest) and must be reaped when it exits.
	cfg := &initproto.Config{Onboot: []initproto.Task{{Name: "orphaner",
		Exec: sh("(sleep 0.3; exit 5) & echo $! > " + pidfile)}}}
	h := start(t, cfg)
	h.wait(initproto.EvTaskDone, "orphaner")
	h.wait(initproto.EvAllReady, "")
	orphan := readPid(t, pidfile)
	eventually(t, "orphan reaped", func() bool { return gone(orphan) })
	eventually(t, "no zombie children", func() bool { return len(zombieChildren()) == 0 })
}

func TestShutdownSequence(t *testing.T) {
	dir := t.TempDir()
	politePid, stubbornPid := filepath.Join(dir, "polite"), filepath.Join(dir, "stubborn")
	cfg := &initproto.Config{
		Services: []initproto.Service{
			{Name: "polite", Exec: sh(`echo $$ > ` + politePid + `; trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.05; done`)},
			// Ignores TERM (and so do its sleeps): needs the KILL.
			{Name: "stubborn", Exec: sh(`trap '' TERM; echo $$ > ` + stubbornPid + `; while :; do sleep 0.05; done`),
				Restart: initproto.Restart{Policy: initproto.RestartAlways}},
		},
		Onshutdown: []initproto.Task{
			{Name: "bye", Exec: sh(`kill -0 $(cat ` + politePid + `) && kill -0 $(cat ` + stubbornPid + `) && echo services alive`)},
			{Name: "bye2", Exec: sh("echo second")},
		},
	}
	var pids []int
	var aliveAtReboot []int
	h := start(t, cfg, func(o *Options) { o.StopTimeout = 500 * time.Millisecond })
	h.sys.atReboot = func() {
		for _, p := range pids {
			if !gone(p) {
				aliveAtReboot = append(aliveAtReboot, p)
			}
		}
	}
	h.wait(initproto.EvAllReady, "")
	pids = []int{readPid(t, politePid), readPid(t, stubbornPid)}
	h.send("poweroff")
	if cmd := h.waitDone(); cmd != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Errorf("reboot cmd %#x", cmd)
	}
	h.before("all-ready", "shutdown", "task-done bye", "task-done bye2", "shutdown-done")
	if len(aliveAtReboot) > 0 {
		t.Errorf("services %v still there at reboot", aliveAtReboot)
	}
	if k := h.kinds(); k[len(k)-1] != "shutdown-done" {
		t.Errorf("events after shutdown-done: %v", k)
	}
	if h.count("service-started", "stubborn") != 1 || h.count("service-exited", "") != 0 || h.count("service-failed", "") != 0 {
		t.Errorf("services restarted or reported during shutdown: %v", h.kinds())
	}
	c := h.console.String()
	for _, want := range []string{"kitinit: shutting down: poweroff requested by host (", "[bye] services alive\n",
		"[polite] got TERM\n", "service polite stopped: exit status 0\n", "service stubborn stopped: killed by SIGKILL\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	calls := h.sys.Calls()
	i := slices.Index(calls, "killall SIGTERM")
	if i < 0 || !slices.Equal(calls[i:], []string{"killall SIGTERM", "killall SIGKILL", "sync", "reboot 0x4321fedc"}) {
		t.Errorf("system calls %q", calls)
	}
}

func TestRebootCommand(t *testing.T) {
	h := start(t, &initproto.Config{})
	h.wait(initproto.EvAllReady, "")
	h.send("reboot")
	if cmd := h.waitDone(); cmd != unix.LINUX_REBOOT_CMD_RESTART {
		t.Errorf("reboot cmd %#x", cmd)
	}
	if ev := h.wait(initproto.EvShutdown, ""); ev.Detail != "reboot requested by host" {
		t.Errorf("shutdown detail %q", ev.Detail)
	}
}

func TestSignalRequestsPoweroff(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	h := start(t, &initproto.Config{}, func(o *Options) { o.Signals = sigs })
	h.wait(initproto.EvAllReady, "")
	sigs <- syscall.SIGCHLD // ignored
	sigs <- syscall.SIGPWR
	if cmd := h.waitDone(); cmd != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Errorf("reboot cmd %#x", cmd)
	}
	if ev := h.wait(initproto.EvShutdown, ""); ev.Detail != "signal SIGPWR" {
		t.Errorf("shutdown detail %q", ev.Detail)
	}
}

func TestPowerButton(t *testing.T) {
	var input string
	h := start(t, &initproto.Config{LateModules: []string{"/m/evdev.ko"}}, func(o *Options) { input = o.InputDir })
	if err := os.MkdirAll(input, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(input, "event3"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.wait(initproto.EvAllReady, "")
	f, err := os.OpenFile(filepath.Join(input, "event3"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := func(typ, code uint16, value int32) []byte {
		b := make([]byte, inputEventSize)
		binary.NativeEndian.PutUint16(b[inputEventSize-8:], typ)
		binary.NativeEndian.PutUint16(b[inputEventSize-6:], code)
		binary.NativeEndian.PutUint32(b[inputEventSize-4:], uint32(value))
		return b
	}
	var b []byte
	b = append(b, rec(evKey, 30, 1)...)       // KEY_A
	b = append(b, rec(0, 0, 0)...)            // SYN
	b = append(b, rec(evKey, keyPower, 0)...) // a release alone does nothing
	f.Write(b[:len(b)-5])                     // records may arrive split
	f.Write(b[len(b)-5:])
	select {
	case <-h.sys.reboot:
		t.Fatal("powered off without a KEY_POWER press")
	case <-time.After(100 * time.Millisecond):
	}
	f.Write(rec(evKey, keyPower, 1))
	if cmd := h.waitDone(); cmd != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Errorf("reboot cmd %#x", cmd)
	}
	if ev := h.wait(initproto.EvShutdown, ""); ev.Detail != "power button" {
		t.Errorf("shutdown detail %q", ev.Detail)
	}
	if calls := h.sys.Calls(); !slices.Contains(calls, "module /m/evdev.ko") {
		t.Errorf("late module not loaded: %q", calls)
	}
}

func TestMemoryCommand(t *testing.T) {
	cfg := &initproto.Config{Services: []initproto.Service{{Name: "sleeper", Exec: sh("exec sleep 1000")}}}
	h := start(t, cfg)
	h.wait(initproto.EvAllReady, "")
	h.send("memory")
	ev := h.wait(initproto.EvMemory, "")
	for _, k := range []string{"mem_total", "mem_available", "mem_free", "rss_sleeper", "rss_kitinit"} {
		if ev.Data[k] <= 0 || ev.Data[k]%1024 != 0 {
			t.Errorf("%s = %d", k, ev.Data[k])
		}
	}
	if ev.Data["mem_total"] < ev.Data["mem_available"] || ev.Data["rss_sleeper"] > ev.Data["mem_total"] {
		t.Errorf("implausible figures %v", ev.Data)
	}
}

func TestUnknownCommand(t *testing.T) {
	h := start(t, &initproto.Config{})
	h.host.WriteString("  \r\nfrobnicate\r\n")
	if ev := h.wait(initproto.EvError, ""); ev.Detail != `unknown command "frobnicate"` {
		t.Errorf("detail %q", ev.Detail)
	}
}

func TestBadConfigPowersOff(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "kitinit.json")
	os.WriteFile(bad, []byte(`{"hostname": 3}`), 0o644)
	h := start(t, nil, func(o *Options) { o.ConfigPath = bad })
	ev := h.wait(initproto.EvError, "")
	if !strings.Contains(ev.Detail, "config") {
		t.Errorf("error detail %q", ev.Detail)
	}
	if cmd := h.waitDone(); cmd != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Errorf("reboot cmd %#x", cmd)
	}
	if ev := h.wait(initproto.EvShutdown, ""); !strings.HasPrefix(ev.Detail, "fatal: config") {
		t.Errorf("shutdown detail %q", ev.Detail)
	}
}

func TestConfigFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kitinit.json")
	os.WriteFile(path, []byte(`{"hostname":"h","onboot":[{"name":"t","exec":{"path":"/bin/true","uid":0,"gid":0},"timeout":"5s"}]}`), 0o644)
	h := start(t, nil, func(o *Options) { o.ConfigPath = path })
	h.wait(initproto.EvTaskDone, "t")
	h.wait(initproto.EvAllReady, "")
	if !slices.Contains(h.sys.Calls(), "hostname h") {
		t.Errorf("calls %q", h.sys.Calls())
	}
}

func TestNoChannel(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	h := start(t, &initproto.Config{Onboot: []initproto.Task{{Name: "t", Exec: sh("echo hello")}}}, func(o *Options) {
		os.WriteFile(o.CmdlinePath, []byte("console=ttyS0\n"), 0o644)
		o.Signals = sigs
	})
	eventually(t, "console", func() bool { return strings.Contains(h.console.String(), "kitinit: all ready (") })
	sigs <- syscall.SIGTERM
	h.waitDone()
	if k := h.kinds(); len(k) != 0 {
		t.Errorf("events without a channel: %v", k)
	}
	if slices.ContainsFunc(h.sys.Calls(), func(s string) bool { return strings.HasPrefix(s, "channel") }) {
		t.Error("opened a channel")
	}
	if c := h.console.String(); !strings.Contains(c, "[t] hello\n") || !strings.Contains(c, "kitinit: shutdown done (") {
		t.Errorf("console:\n%s", c)
	}
}

func TestServiceEnvironmentAndCredentials(t *testing.T) {
	// Not under t.TempDir(): its parent is 0700, out of nobody's reach.
	dir, err := os.MkdirTemp("", "kitinit-env")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "out")
	cfg := &initproto.Config{Onboot: []initproto.Task{{Name: "env",
		Exec: initproto.Exec{Path: "/bin/sh", Args: []string{"-c", `echo "$FOO|$PATH|$HOME|$(pwd)|$(id -u):$(id -g)|$(id -G)" > ` + out},
			Env: map[string]string{"FOO": "bar"}, Dir: dir, UID: 65534, GID: 65534}}}}
	if os.Getuid() != 0 {
		cfg.Onboot[0].Exec.UID, cfg.Onboot[0].Exec.GID = 0, 0
	}
	h := start(t, cfg)
	h.wait(initproto.EvTaskDone, "env")
	b, _ := os.ReadFile(out)
	want := "bar|" + defaultPath + "|/|" + dir + "|65534:65534|65534\n"
	if os.Getuid() != 0 {
		want = "bar|" + defaultPath + "|/root|" + dir + "|"
	}
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("got %q, want %q", b, want)
	}
}

// inOrder says whether want appears in got as a subsequence.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// A reseed (a restored snapshot's fresh state) is a long command line:
// kitinit applies it through the system and acknowledges it; a bad one is
// an error event and no acknowledgement, and a line over the limit is
// refused whole.
func TestReseedCommand(t *testing.T) {
	h := start(t, &initproto.Config{Services: []initproto.Service{{Name: "svc", Exec: sh("exec sleep 1000")}}})
	h.wait(initproto.EvAllReady, "")
	r := initproto.Reseed{UnixNano: 1_700_000_000_000_000_000, Entropy: make([]byte, 64), Files: make([]byte, 2048)}
	line, err := r.Command()
	if err != nil {
		t.Fatal(err)
	}
	if len(line) <= 256 {
		t.Fatalf("test needs a command longer than the old 256-byte limit, got %d", len(line))
	}
	h.send(line)
	// The running service is named ready again, before the answer.
	if ev := h.wait(initproto.EvServiceReady, "svc"); ev.Detail == "" {
		t.Error("the re-announced service-ready has no detail")
	}
	ev := h.wait(initproto.EvReseeded, "")
	if ev.Data["entropy_bytes"] != 64 || ev.Data["files"] != 2048 {
		t.Errorf("reseeded event data = %v", ev.Data)
	}
	want := "reseed time=1700000000000000000 entropy=64 files=2048"
	if !slices.Contains(h.sys.Calls(), want) {
		t.Errorf("system calls %v lack %q", h.sys.Calls(), want)
	}
	h.send(initproto.CmdReseed + " bm90IGpzb24=")
	if ev := h.wait(initproto.EvError, ""); !strings.Contains(ev.Detail, "reseed") {
		t.Errorf("bad reseed: error %q", ev.Detail)
	}
	h.send(initproto.CmdReseed + " " + strings.Repeat("A", initproto.MaxCommandLine))
	if ev := h.wait(initproto.EvError, ""); !strings.Contains(ev.Detail, "longer than") {
		t.Errorf("over-long line: error %q", ev.Detail)
	}
	h.send("memory")
	h.wait(initproto.EvMemory, "")
	for _, c := range h.sys.Calls() {
		if strings.HasPrefix(c, "reseed") && c != want {
			t.Errorf("a bad reseed reached the system: %s", c)
		}
	}
}
