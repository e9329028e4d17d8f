package vmtest_test

import (
	"bufio"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/testcases/vmtest"
)

// TestPublishedPort boots a spec, dials its published port from the host
// and reads the console, the way a user's test of a network service would.
func TestPublishedPort(t *testing.T) {
	qemutest.Require(t, "x86_64")
	v := vmtest.Boot(t, "testdata/web.yml", vmtest.WithPublish(8080), vmtest.WithArch("x86_64"))
	addr := v.Port(8080)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("Port(8080) = %q, want a loopback address", addr)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello from vmtest-web\n" {
		t.Errorf("port 8080 answered %q, %v", line, err)
	}
	if got := v.ExpectConsole(`hello: listening on .*:8080`, 10*time.Second); !strings.Contains(got, "[hello]") {
		t.Errorf("ExpectConsole returned %q, want the service's prefixed line", got)
	}
	if v.VM().Stage().String() != "all-ready" {
		t.Errorf("stage %q after Boot, want all-ready", v.VM().Stage())
	}
}

// TestExecAndStat runs commands and reads files over SSH.
func TestExecAndStat(t *testing.T) {
	qemutest.Require(t, "x86_64")
	v := vmtest.Boot(t, "testdata/web.yml", vmtest.WithSSH(), vmtest.WithMemory(192))
	if r := v.Exec("kitrun-ping"); r.Status != 0 || string(r.Stdout) != "pong\n" {
		t.Errorf("kitrun-ping: status %d, stdout %q, stderr %q", r.Status, r.Stdout, r.Stderr)
	}
	if r := v.Exec("/usr/bin/hello -addr :bad"); r.Status == 0 {
		t.Errorf("hello with a bad address exited 0; want a failure status")
	}
	fi := v.Stat("/etc/motd")
	if !fi.Exists || fi.Mode != "0444" || string(fi.Content) != "vmtest\n" {
		t.Errorf("stat /etc/motd = %+v", fi)
	}
	v.Shutdown()
	select {
	case <-v.VM().Exited():
	default:
		t.Error("the machine still runs after Shutdown")
	}
}

// TestSnapshot: a VM restored from its snapshot answers over SSH with its
// own keys and serves its published port, the way a test of the running
// system would use it.
func TestSnapshot(t *testing.T) {
	qemutest.Require(t, "x86_64")
	for i := range 2 { // the first may build the snapshot; the second restores it
		v := vmtest.Boot(t, "testdata/web.yml", vmtest.WithSSH(), vmtest.WithPublish(8080), vmtest.WithSnapshot(), vmtest.WithArch("x86_64"))
		if use := v.VM().SnapshotUse(); !use.Restored {
			t.Fatalf("boot %d: not restored from a snapshot: %+v", i+1, use)
		}
		if r := v.Exec("kitrun-ping"); r.Status != 0 || string(r.Stdout) != "pong\n" {
			t.Errorf("boot %d: kitrun-ping: status %d, stdout %q, stderr %q", i+1, r.Status, r.Stdout, r.Stderr)
		}
		c, err := net.DialTimeout("tcp", v.Port(8080), 10*time.Second)
		if err != nil {
			t.Fatalf("boot %d: %v", i+1, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != "hello from vmtest-web\n" {
			t.Errorf("boot %d: port 8080 answered %q, %v", i+1, line, err)
		}
		v.Shutdown()
	}
}

// TestVMOutlivesItsStartersThread: a vmtest user may boot from a goroutine
// locked to its OS thread that then returns (its thread exits with it) and
// may lock and retire threads while the VM runs. Linux sends the
// parent-death signal when the forking thread exits, so a QEMU forked on
// such a thread would die with it; the VM must run on.
func TestVMOutlivesItsStartersThread(t *testing.T) {
	qemutest.Require(t, "x86_64")
	var v *vmtest.VM
	booted := make(chan struct{})
	go func() {
		defer close(booted)
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		v = vmtest.Boot(t, "testdata/web.yml", vmtest.WithPublish(8080), vmtest.WithArch("x86_64"))
	}()
	<-booted
	if v == nil {
		return // Boot failed the test
	}
	var churn sync.WaitGroup
	for range 16 {
		churn.Add(1)
		go func() {
			defer churn.Done()
			runtime.LockOSThread()
		}()
	}
	churn.Wait()
	// The threads' exits, and any signal, are asynchronous.
	time.Sleep(time.Second)
	select {
	case <-v.VM().Exited():
		t.Fatalf("the machine exited when the threads that started it went away:\n%s", v.Console())
	default:
	}
	c, err := net.DialTimeout("tcp", v.Port(8080), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello from vmtest-web\n" {
		t.Errorf("port 8080 answered %q, %v", line, err)
	}
}
