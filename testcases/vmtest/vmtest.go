// Package vmtest boots kitrun images inside a user's `go test`: build (from
// kitrun's cache when unchanged), boot, wait for all-ready, and power off at
// the end of the test, with the console and the services' logs attached to
// a failing test.
//
//	func TestServer(t *testing.T) {
//		v := vmtest.Boot(t, "testdata/server.yml", vmtest.WithPublish(8080), vmtest.WithSSH())
//		conn, err := net.Dial("tcp", v.Port(8080))
//		...
//		if r := v.Exec("/usr/bin/server --check"); r.Status != 0 {
//			t.Errorf("check: %s", r.Stderr)
//		}
//		v.ExpectConsole(`served 1 request`, 10*time.Second)
//	}
//
// Without QEMU on the machine a test using Boot is skipped, except under
// CI=true, where it fails: a CI run that skipped every VM proves nothing.
package vmtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/hypervisor"
	_ "github.com/kitrun/kitrun/hypervisor/qemu" // the default backend
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/testcases"
)

// ExecResult is how a command run in the guest ended.
type ExecResult = testcases.ExecResult

// FileInfo describes a guest path.
type FileInfo = testcases.FileInfo

type config struct {
	ssh         bool
	publish     []int
	arch        string
	timeout     time.Duration
	res         hypervisor.Resources
	format      string
	backend     string
	backendOpts hypervisor.Options
	snapshot    bool
}

// Option adjusts Boot.
type Option func(*config)

// WithSSH boots with the guest SSH server and per-run keys; Exec and Stat
// need it. A spec is built with the server forced in.
func WithSSH() Option { return func(c *config) { c.ssh = true } }

// WithPublish makes each guest TCP port reachable from the host (on QEMU,
// forwarded from a free 127.0.0.1 port); Port tells where. The image needs
// `network: {mode: auto}` (or WithSSH).
func WithPublish(ports ...int) Option {
	return func(c *config) { c.publish = append(c.publish, ports...) }
}

// WithMemory sets the guest memory in MiB (default
// hypervisor.DefaultMemoryMiB).
func WithMemory(mib int) Option { return func(c *config) { c.res.MemoryMiB = mib } }

// WithCPUs sets the number of virtual CPUs.
func WithCPUs(n int) Option { return func(c *config) { c.res.CPUs = n } }

// WithMachine picks the machine type (default: the platform's).
func WithMachine(name string) Option { return func(c *config) { c.res.Machine = name } }

// WithFormat boots the image in a disk format (boot/disk) instead of
// directly; a spec is built with that format.
func WithFormat(name string) Option { return func(c *config) { c.format = name } }

// WithBackend boots on another backend than QEMU (hypervisor.Open: its
// package must be imported).
func WithBackend(name string, opts hypervisor.Options) Option {
	return func(c *config) { c.backend, c.backendOpts = name, opts }
}

// WithArch boots another architecture than the host's (x86_64, aarch64).
func WithArch(name string) Option { return func(c *config) { c.arch = name } }

// WithTimeout sets how long the boot may take to reach all-ready (default
// 2m).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithSnapshot starts the VM from a snapshot of its machine taken at
// all-ready, kept in kitrun's cache (built by the first test that asks;
// README, "Snapshots"): for tests of the running system, not of its boot,
// which a restored VM does not go through. The VM gets fresh SSH keys,
// entropy and clock all the same.
func WithSnapshot() Option { return func(c *config) { c.snapshot = true } }

// WithAccel picks the accelerator: auto (default), kvm, hvf, whpx or tcg.
func WithAccel(name string) Option { return func(c *config) { c.res.Accel = name } }

// VM is a booted, ready guest owned by a test.
type VM struct {
	t    testing.TB
	name string
	cfg  config
	m    *testcases.Machine
	rec  *testcases.Record
}

// Boot builds specOrImage (a spec file, or an image directory made by
// kitrun build), boots it and waits until every service is ready. On any
// failure it calls t.Fatal with the stage reached and the console's last
// lines. The VM is powered off when the test ends.
func Boot(t testing.TB, specOrImage string, opts ...Option) *VM {
	t.Helper()
	cfg := config{timeout: 2 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	a := arch.Host()
	if cfg.arch != "" {
		var err error
		if a, err = arch.Lookup(cfg.arch); err != nil {
			t.Fatalf("vmtest: %v", err)
		}
	}
	ctx := context.Background()
	backend, err := hypervisor.Open(cfg.backend, cfg.backendOpts)
	if err != nil {
		t.Fatalf("vmtest: %v", err)
	}
	if err := backend.Verify(ctx, a); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("vmtest: CI: %v", err)
		}
		t.Skipf("vmtest: %v", err)
	}
	plat, err := backend.Platform(a)
	if err != nil {
		t.Fatalf("vmtest: %v", err)
	}
	img, err := testcases.BuildImage(ctx, specOrImage, testcases.BuildOptions{Platform: plat, SSH: cfg.ssh, Formats: formats(cfg.format), Machine: cfg.res.Machine})
	if err != nil {
		t.Fatalf("vmtest: build %s:\n%v", specOrImage, err)
	}
	rec := testcases.NewRecord(nil, nil)
	vo := vm.Options{Resources: cfg.res, Format: cfg.format, SSH: cfg.ssh, Console: rec, OnEvent: rec.OnEvent}
	if cfg.snapshot {
		vo.Snapshots = vm.SnapshotCache(assemble.DefaultCacheDir())
	}
	m, err := testcases.Boot(ctx, backend, img, testcases.BootOptions{Options: vo, Publish: cfg.publish})
	if err != nil {
		t.Fatalf("vmtest: boot %s: %v", img.Manifest.Name, err)
	}
	v := &VM{t: t, name: img.Manifest.Name, cfg: cfg, m: m, rec: rec}
	t.Cleanup(v.cleanup)
	if err := m.WaitReady(ctx, cfg.timeout); err != nil {
		msg := err.Error()
		if !strings.Contains(msg, "last console lines") {
			msg += "\n--- last console lines ---\n" + strings.Join(rec.Tail(20), "\n")
		}
		t.Fatalf("vmtest: %s did not become ready: %s", v.name, msg)
	}
	return v
}

// cleanup attaches the guest's state to a failed test, then powers it off.
func (v *VM) cleanup() {
	if v.t.Failed() {
		v.t.Logf("vmtest: %s at stage %s; last console lines:\n%s", v.name, v.m.Stage(), strings.Join(v.rec.Tail(40), "\n"))
		v.logServices()
	}
	select {
	case <-v.m.Exited():
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := v.m.Shutdown(ctx, 10*time.Second); err != nil {
		v.t.Errorf("vmtest: power-off of %s was not clean: %v", v.name, err)
	}
}

// logServices logs each service's last output: its log file over SSH when
// there is SSH, else the lines its last exit or failure reported.
func (v *VM) logServices() {
	for _, s := range v.m.VM.Services() {
		if v.cfg.ssh {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			fi, err := v.m.Stat(ctx, "/run/log/"+s.Name+".log")
			cancel()
			if err == nil && fi.Exists {
				v.t.Logf("vmtest: service %s (started %d times, ready %v), /run/log/%s.log:\n%s", s.Name, s.Started, s.Ready, s.Name, lastLines(string(fi.Content), 40))
				continue
			}
		}
		v.t.Logf("vmtest: service %s (started %d times, ready %v, failed %v) %s\n%s", s.Name, s.Started, s.Ready, s.Failed, s.Detail, strings.Join(s.LastLogs, "\n"))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Exec runs cmd in the guest over SSH (needs WithSSH) and returns how it
// ended; a non-zero status is a result, not a failure. Transport errors, and
// a command still running after a minute, fail the test.
func (v *VM) Exec(cmd string) ExecResult {
	v.t.Helper()
	return v.ExecInput(cmd, nil)
}

// ExecInput is Exec with stdin as the command's input.
func (v *VM) ExecInput(cmd string, stdin []byte) ExecResult {
	v.t.Helper()
	v.needSSH("Exec")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.m.Exec(ctx, cmd, stdin)
	if err != nil {
		v.t.Fatalf("vmtest: exec %q in %s: %v", cmd, v.name, err)
	}
	return r
}

// Stat describes a guest path over SSH (needs WithSSH), content included
// for regular files up to 1 MiB.
func (v *VM) Stat(path string) FileInfo {
	v.t.Helper()
	v.needSSH("Stat")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fi, err := v.m.Stat(ctx, path)
	if err != nil {
		v.t.Fatalf("vmtest: stat %s in %s: %v", path, v.name, err)
	}
	return fi
}

func (v *VM) needSSH(what string) {
	v.t.Helper()
	if !v.cfg.ssh {
		v.t.Fatalf("vmtest: %s runs over SSH; boot with vmtest.WithSSH()", what)
	}
}

// ExpectConsole waits up to timeout for a console line (from the start of
// the boot) that matches the regular expression, and returns it. It fails
// the test with the console's last lines when none comes.
func (v *VM) ExpectConsole(pattern string, timeout time.Duration) string {
	v.t.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		v.t.Fatalf("vmtest: ExpectConsole: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var found string
	err = v.rec.Wait(ctx, v.m.Exited(), func(u testcases.Update) (bool, error) {
		for _, l := range u.Lines {
			if re.MatchString(l) {
				found = l
				return true, nil
			}
		}
		if u.Partial != "" && re.MatchString(u.Partial) {
			found = u.Partial
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		why := fmt.Sprintf("within %s", timeout)
		if ctx.Err() == nil {
			why = "before the machine exited"
		}
		v.t.Fatalf("vmtest: no console line of %s matches /%s/ %s; last console lines:\n%s", v.name, pattern, why, strings.Join(v.rec.Tail(20), "\n"))
	}
	return found
}

// Console returns the whole console so far.
func (v *VM) Console() string { return strings.Join(v.rec.Lines(), "\n") }

// Port returns the host address ("127.0.0.1:PORT") of a guest port
// published with WithPublish.
func (v *VM) Port(guestPort int) string {
	v.t.Helper()
	addr, err := v.m.Addr(guestPort)
	if err != nil {
		v.t.Fatalf("vmtest: %v; boot with vmtest.WithPublish(%d)", err, guestPort)
	}
	return addr
}

// Shutdown powers the guest off gracefully now (onshutdown tasks run) and
// fails the test if that is not clean.
func (v *VM) Shutdown() {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := v.m.Shutdown(ctx, 10*time.Second); err != nil {
		v.t.Fatalf("vmtest: power-off of %s: %v", v.name, err)
	}
	if err := v.m.ExitErr(); err != nil {
		v.t.Fatalf("vmtest: %s exited uncleanly: %v", v.name, err)
	}
}

// VM is the underlying vm.VM, for what this package does not wrap
// (Timeline, Services, WaitEvent, Memory).
func (v *VM) VM() *vm.VM { return v.m.VM }

func formats(f string) []string {
	if f == "" {
		return nil
	}
	return []string{f}
}
