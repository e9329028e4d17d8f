package testcases

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// Guest is a booted machine as the harness sees it. *Machine is the real
// one; the runner's own tests use fakes.
type Guest interface {
	// WaitReady waits for all-ready, a failure, or the timeout (see
	// vm.VM.WaitReady and its typed errors).
	WaitReady(ctx context.Context, timeout time.Duration) error
	// Stage is the last boot stage reached.
	Stage() string
	// Exec runs a command in the guest over SSH. A non-zero status is not
	// an error.
	Exec(ctx context.Context, cmd string, stdin []byte) (ExecResult, error)
	// Stat describes a guest path over SSH.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// Addr is the host address ("127.0.0.1:PORT") of a published guest port.
	Addr(guestPort int) (string, error)
	// Shutdown powers the guest off gracefully and waits until it is gone.
	Shutdown(ctx context.Context, grace time.Duration) error
	// Kill ends the machine at once.
	Kill() error
	// Exited is closed once the machine is gone and its events consumed.
	Exited() <-chan struct{}
	// ExitErr is the hypervisor's exit error once Exited (nil: clean).
	ExitErr() error
}

// Launcher builds and boots the image of a test.
type Launcher interface {
	Launch(ctx context.Context, req LaunchRequest) (Guest, error)
}

// LaunchRequest is one boot of a test case.
type LaunchRequest struct {
	Spec      string // spec file
	Arch      arch.Arch
	SSH       bool
	Publish   []int // guest ports
	MemoryMiB int
	Console   io.Writer
	OnEvent   func(hypervisor.Event)
}

// BuildError is a spec or build failure, as opposed to a failed boot.
type BuildError struct{ Err error }

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// QEMULauncher boots on QEMU through hypervisor/vm.
type QEMULauncher struct {
	Accel   string // default auto
	Machine string
	CPUs    int
	// CacheDir is kitrun's cache (assemble.DefaultCacheDir when empty).
	CacheDir string
}

// Launch implements Launcher.
func (l *QEMULauncher) Launch(ctx context.Context, req LaunchRequest) (Guest, error) {
	img, err := BuildImage(ctx, req.Spec, BuildOptions{Arch: req.Arch, SSH: req.SSH, CacheDir: l.CacheDir})
	if err != nil {
		return nil, &BuildError{err}
	}
	return Boot(ctx, img, BootOptions{
		Accel: l.Accel, Machine: l.Machine, CPUs: l.CPUs, MemoryMiB: req.MemoryMiB,
		SSH: req.SSH, Publish: req.Publish, Console: req.Console, OnEvent: req.OnEvent,
	})
}

// BuildOptions steer BuildImage.
type BuildOptions struct {
	Arch arch.Arch
	// SSH forces the guest's SSH server into the image.
	SSH bool
	// CacheDir is kitrun's cache, which keeps the image (see
	// assemble.BuildCached); assemble.DefaultCacheDir() when empty.
	CacheDir string
}

// buildMu serializes builds in this process: parallel tests share most
// programs (kitinit at least), and one after the other the second build is
// a cache hit instead of a second run of the Go toolchain. Boots still run
// in parallel.
var buildMu sync.Mutex

// BuildImage assembles the spec at path into kitrun's image cache (a no-op
// when nothing changed), or loads path when it is an image directory. An
// image from the cache is pinned to its content digest until the process
// exits: no later build changes it under a running test.
func BuildImage(ctx context.Context, path string, o BuildOptions) (*image.Image, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if o.Arch.Name == "" {
		o.Arch = arch.Host()
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		img, err := image.Load(path)
		if err != nil {
			return nil, err
		}
		if img.Arch.Name != o.Arch.Name {
			return nil, fmt.Errorf("image %s is for %s, not %s", path, img.Arch.Name, o.Arch.Name)
		}
		if o.SSH && img.Manifest.SSH == 0 {
			return nil, fmt.Errorf("image %s was built without SSH; pass the spec instead, or build it with `ssh: true`", path)
		}
		return img, nil
	}
	s, err := spec.Parse(path)
	if err != nil {
		return nil, err
	}
	opts := assemble.Options{Arch: o.Arch, CacheDir: o.CacheDir}
	if o.SSH {
		assembleWithSSH(&opts)
	}
	res, err := assemble.BuildCached(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	return res.Image, nil
}

// BootOptions steer Boot.
type BootOptions struct {
	Accel     string // default auto
	Machine   string
	MemoryMiB int // default 256
	CPUs      int
	// SSH boots with per-run keys and a forwarded SSH port.
	SSH bool
	// Publish lists guest TCP ports to forward from free 127.0.0.1 ports.
	Publish      []int
	ExtraCmdline string
	Console      io.Writer
	OnEvent      func(hypervisor.Event)
}

// Machine is a real booted image: a vm.VM with its published ports and SSH.
type Machine struct {
	VM    *vm.VM
	ports map[int]string
}

var _ Guest = (*Machine)(nil)

// Boot starts img on QEMU. It returns once the machine runs.
func Boot(ctx context.Context, img *image.Image, o BootOptions) (*Machine, error) {
	if o.Accel == "" {
		o.Accel = "auto"
	}
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = 256
	}
	opts := vm.Options{
		Machine: o.Machine, Accel: o.Accel, MemoryMiB: o.MemoryMiB, CPUs: o.CPUs,
		Console: o.Console, OnEvent: o.OnEvent, ExtraCmdline: o.ExtraCmdline,
	}
	if o.SSH {
		bootWithSSH(&opts)
	}
	m := &Machine{ports: map[int]string{}}
	for _, gp := range o.Publish {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		opts.Publish = append(opts.Publish, hypervisor.PortForward{HostAddr: "127.0.0.1", HostPort: hp, GuestPort: gp})
		m.ports[gp] = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
	}
	v, err := vm.Boot(ctx, &qemu.Backend{}, img, opts)
	if err != nil {
		return nil, err
	}
	m.VM = v
	return m, nil
}

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// freePort picks a free loopback port, never the same twice in a process,
// so parallel tests do not race each other for one.
func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portUsed[p] {
			portUsed[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

// WaitReady implements Guest.
func (m *Machine) WaitReady(ctx context.Context, timeout time.Duration) error {
	return m.VM.WaitReady(ctx, timeout)
}

// Stage implements Guest.
func (m *Machine) Stage() string { return m.VM.Stage() }

// Exec implements Guest.
func (m *Machine) Exec(ctx context.Context, cmd string, stdin []byte) (ExecResult, error) {
	return guestExec(ctx, m.VM, cmd, stdin)
}

// Stat implements Guest.
func (m *Machine) Stat(ctx context.Context, path string) (FileInfo, error) {
	return guestStat(ctx, m.VM, path)
}

// Addr implements Guest.
func (m *Machine) Addr(guestPort int) (string, error) {
	a, ok := m.ports[guestPort]
	if !ok {
		return "", fmt.Errorf("guest port %d is not published", guestPort)
	}
	return a, nil
}

// Shutdown implements Guest.
func (m *Machine) Shutdown(ctx context.Context, grace time.Duration) error {
	return m.VM.Shutdown(ctx, grace)
}

// Kill implements Guest.
func (m *Machine) Kill() error {
	err := m.VM.Machine.Kill()
	select {
	case <-m.VM.Exited():
	case <-time.After(5 * time.Second):
	}
	return err
}

// Exited implements Guest.
func (m *Machine) Exited() <-chan struct{} { return m.VM.Exited() }

// ExitErr implements Guest.
func (m *Machine) ExitErr() error { return m.VM.Machine.Err() }
