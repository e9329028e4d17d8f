package vm_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/procid"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

const bootTimeout = 90 * time.Second

// boot starts img and registers teardown; the console is kept for failures.
func boot(t *testing.T, specPath string, opts vm.Options) *vm.VM {
	t.Helper()
	a := qemutest.Require(t, "x86_64")
	img := qemutest.BuildSpec(t, a, specPath)
	var console qemutest.Buffer
	opts.Console = &console
	opts.Accel = "tcg"
	v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Shutdown(context.Background(), 5*time.Second)
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	})
	return v
}

func example(t *testing.T, name string) string {
	return filepath.Join(qemutest.RepoRoot(t), "examples", name)
}

func stages(v *vm.VM) []string {
	var out []string
	for _, m := range v.Timeline() {
		out = append(out, m.Stage.String())
	}
	return out
}

func TestMinimalReadyAndCleanTeardown(t *testing.T) {
	v := boot(t, example(t, "minimal.yml"), vm.Options{})
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	want := []string{"vmm-ready", "init-start", "modules-loaded", "service-started hello", "service-ready hello", "all-ready"}
	got := strings.Join(stages(v), ",")
	for _, s := range want {
		if !strings.Contains(got, s) {
			t.Errorf("timeline %v lacks %q", got, s)
		}
	}
	info := v.Machine.Info()
	if info.Accel != "tcg" || info.Process == nil || info.Process.PID == 0 {
		t.Errorf("info = %+v", info)
	}
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	assertOrder(t, stages(v), []string{"all-ready", "shutdown", "shutdown-done"})
	assertGone(t, info.Process.PID)
	if err := v.Machine.Err(); err != nil {
		t.Errorf("qemu exit: %v", err)
	}
}

// TestRichExampleStages boots examples/rich.yml and checks every kitinit
// stage: network, ordered onboot tasks, four services with four kinds of
// probe, a restart, an unprivileged service, a published port, and the
// onshutdown task at power-off.
func TestRichExampleStages(t *testing.T) {
	v := boot(t, example(t, "rich.yml"), vm.Options{
		Publish: []hypervisor.PortForward{{HostAddr: "127.0.0.1", GuestPort: 8080}},
	})
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	got := stages(v)
	order := []string{"init-start", "modules-loaded", "network-up", "task-done render", "task-done check", "all-ready"}
	assertOrder(t, got, order)
	for _, s := range []string{"hello", "sock", "flaky", "worker"} {
		assertOrder(t, got, []string{"task-done check", "service-started " + s, "service-ready " + s, "all-ready"})
	}
	for _, s := range v.Services() {
		want := 1
		if s.Name == "flaky" {
			want = 2 // crashed once, restarted by policy
		}
		if s.Started != want || !s.Ready {
			t.Errorf("service %s: %+v, want started %d times and ready", s.Name, s, want)
		}
	}
	// The published port reaches the guest service, on loopback.
	addr, err := v.Machine.Endpoint(8080)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || line != "hello from appliance\n" {
		t.Errorf("published port answered %q, %v", line, err)
	}
	// The memory command answers with real figures.
	mem := waitGuest(t, v, initproto.EvMemory, func() { v.Send(context.Background(), initproto.CmdMemory) })
	if mem.Data["mem_total"] < 100<<20 || mem.Data["rss_hello"] <= 0 {
		t.Errorf("memory event %+v", mem.Data)
	}
	done := make(chan vm.Event, 1)
	go func() {
		ev, _ := v.WaitEvent(context.Background(), func(e vm.Event) bool {
			return e.Guest != nil && e.Guest.Kind == initproto.EvTaskDone && e.Guest.Name == "goodbye"
		})
		done <- ev
	}()
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-done:
		if ev.Guest == nil {
			t.Error("onshutdown task goodbye did not run")
		}
	case <-time.After(5 * time.Second):
		t.Error("onshutdown task goodbye did not run")
	}
	assertGone(t, v.Machine.Info().Process.PID)
}

func TestBootTimeoutNamesStageAndConsole(t *testing.T) {
	p := qemutest.WriteSpec(t, "slow", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
services:
  - name: never
    go: %s
    args: [-addr, ":8080"]
    ready: {tcp: 9999, timeout: 5m}
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/hello")))
	v := boot(t, p, vm.Options{})
	// Long enough to get past the kernel, short enough to stop waiting for
	// a probe that can never succeed.
	ev, err := v.WaitEvent(context.Background(), func(e vm.Event) bool {
		return e.Guest != nil && e.Guest.Kind == initproto.EvServiceStart
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = ev
	err = v.WaitReady(context.Background(), time.Second)
	var te *vm.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a TimeoutError", err)
	}
	if te.Stage.String() != "service-started never" {
		t.Errorf("stage %q, want service-started never", te.Stage)
	}
	if len(te.Console) == 0 || !strings.Contains(err.Error(), "last console lines") {
		t.Errorf("error carries no console lines: %v", err)
	}
}

func TestFailingServiceIsNamed(t *testing.T) {
	p := qemutest.WriteSpec(t, "failing", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
services:
  - name: broken
    go: %s
    args: [no-such-job]
    restart: never
    ready: {file: /run/never, timeout: 1m}
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/demo")))
	v := boot(t, p, vm.Options{})
	err := v.WaitReady(context.Background(), bootTimeout)
	var se *vm.ServiceError
	if !errors.As(err, &se) || se.Service != "broken" {
		t.Fatalf("got %v, want a ServiceError for broken", err)
	}
	if !strings.Contains(strings.Join(se.Log, "\n"), "unknown job no-such-job") {
		t.Errorf("error lacks the service's last output: %v", err)
	}
}

func TestFailingOnbootTaskIsNamed(t *testing.T) {
	p := qemutest.WriteSpec(t, "failtask", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
onboot:
  - name: bad
    go: %s
    args: [check, /etc/hostname, no-such-word]
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/demo")))
	v := boot(t, p, vm.Options{})
	err := v.WaitReady(context.Background(), bootTimeout)
	var ke *vm.TaskError
	if !errors.As(err, &ke) || ke.Task != "bad" || ke.Status == nil || *ke.Status != 1 {
		t.Fatalf("got %v, want a TaskError for bad with status 1", err)
	}
}

func TestKernelPanicIsReported(t *testing.T) {
	// With no init to run the kernel panics; kitrun must say so, not wait.
	v := boot(t, example(t, "minimal.yml"), vm.Options{ExtraCmdline: "rdinit=/nonexistent init=/nonexistent"})
	err := v.WaitReady(context.Background(), bootTimeout)
	var pe *vm.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a PanicError", err)
	}
	select {
	case <-v.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("panicked guest did not exit")
	}
}

func TestKillLeavesNothing(t *testing.T) {
	v := boot(t, example(t, "minimal.yml"), vm.Options{})
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	pid := v.Machine.Info().Process.PID
	if err := v.Kill(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pid)
	// The runtime directory (QMP socket) is gone too.
	for _, arg := range v.Machine.Info().Process.Command {
		if strings.HasPrefix(arg, "unix:") {
			sock := strings.TrimSuffix(strings.TrimPrefix(arg, "unix:"), ",server=on,wait=off")
			if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
				t.Errorf("runtime dir %s left behind (%v)", filepath.Dir(sock), err)
			}
		}
	}
}

func waitGuest(t *testing.T, v *vm.VM, kind string, trigger func()) *initproto.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan vm.Event, 1)
	go func() {
		ev, _ := v.WaitEvent(ctx, func(e vm.Event) bool { return e.Guest != nil && e.Guest.Kind == kind })
		got <- ev
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter register
	trigger()
	ev := <-got
	if ev.Guest == nil {
		t.Fatalf("no %s event", kind)
	}
	return ev.Guest
}

func assertOrder(t *testing.T, got, want []string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("timeline %v does not contain %v in order", got, want)
	}
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !(procid.ID{PID: pid}).Running() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("qemu pid %d still exists", pid)
}

// TestMinimalAarch64 boots the minimal example on aarch64 under TCG: the
// channel is virtio-console on virtio-mmio there, loaded by kitinit from the
// machine's module list.
func TestMinimalAarch64(t *testing.T) {
	a := qemutest.Require(t, "aarch64")
	img := qemutest.BuildSpec(t, a, example(t, "minimal.yml"))
	v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, vm.Options{Resources: hypervisor.Resources{Accel: "auto"}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Shutdown(context.Background(), 5*time.Second)
	if info := v.Machine.Info(); info.Accel != "tcg" || info.Machine != "virt" {
		t.Errorf("info %+v: want tcg on virt", info)
	}
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, strings.Join(v.ConsoleTail(40), "\n"))
	}
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	assertOrder(t, stages(v), []string{"init-start", "modules-loaded", "service-ready hello", "all-ready", "shutdown-done"})
}

// TestMicrovm boots the minimal example on x86's microvm machine, whose
// channel is virtio-console on virtio-mmio as well.
func TestMicrovm(t *testing.T) {
	v := boot(t, example(t, "minimal.yml"), vm.Options{Resources: hypervisor.Resources{Machine: "microvm"}})
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	assertOrder(t, stages(v), []string{"init-start", "all-ready", "shutdown-done"})
}
