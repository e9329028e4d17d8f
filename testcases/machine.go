package testcases

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// Guest is a booted machine as the harness sees it: *Machine, on whatever
// backend (the runner's own tests boot on the fake one).
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
	// StoppedItself says, once Exited, whether the guest stopped before
	// the host asked it to (see vm.VM.StoppedItself).
	StoppedItself() bool
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
	// Snapshot lets the boot start from a snapshot (TestFile.SnapshotOK).
	Snapshot bool
	Console  io.Writer
	OnEvent  func(vm.Event)
}

// BuildError is a spec or build failure, as opposed to a failed boot.
type BuildError struct{ Err error }

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// VMLauncher builds for its backend's platform and boots through
// hypervisor/vm.
type VMLauncher struct {
	// Backend runs the machines (the default backend when nil).
	Backend hypervisor.Backend
	// Resources for every machine; a test's own memory setting wins.
	hypervisor.Resources
	// Format is the image format booted ("" for direct kernel boot).
	Format string
	// CacheDir is kitrun's cache (assemble.DefaultCacheDir when empty).
	CacheDir string
	// Snapshots, when set, starts the tests that allow it from a snapshot
	// of their machine (built by the first such test of a machine, reused
	// after, by this run and later ones).
	Snapshots *vm.Snapshots
}

// Launch implements Launcher.
func (l *VMLauncher) Launch(ctx context.Context, req LaunchRequest) (Guest, error) {
	backend := l.Backend
	if backend == nil {
		var err error
		if backend, err = hypervisor.Open("", nil); err != nil {
			return nil, err
		}
	}
	plat, err := backend.Platform(req.Arch)
	if err != nil {
		return nil, &BuildError{err}
	}
	bo := BuildOptions{Platform: plat, SSH: req.SSH, CacheDir: l.CacheDir, Machine: l.Machine}
	if l.Format != "" && l.Format != image.FormatDirect {
		bo.Formats = []string{l.Format}
	}
	img, err := BuildImage(ctx, req.Spec, bo)
	if err != nil {
		return nil, &BuildError{err}
	}
	res := l.Resources
	if req.MemoryMiB > 0 {
		res.MemoryMiB = req.MemoryMiB
	}
	opts := vm.Options{Resources: res, Format: l.Format, SSH: req.SSH, Console: req.Console, OnEvent: req.OnEvent}
	if req.Snapshot {
		opts.Snapshots = l.Snapshots
	}
	return Boot(ctx, backend, img, BootOptions{Options: opts, Publish: req.Publish})
}

// BuildOptions steer BuildImage.
type BuildOptions struct {
	// Platform is what the image is built for (its arch included).
	Platform platform.Platform
	// SSH forces the guest's SSH server into the image.
	SSH bool
	// Formats are disk formats (boot/disk) to build beside the kernel and
	// initramfs, for Machine ("" is the platform's default).
	Formats []string
	Machine string
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
	a := o.Platform.Arch
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		img, err := image.Load(path)
		if err != nil {
			return nil, err
		}
		if img.Arch.Name != a.Name {
			return nil, fmt.Errorf("image %s is for %s, not %s", path, img.Arch.Name, a.Name)
		}
		if img.Manifest.Platform != o.Platform.Name {
			return nil, fmt.Errorf("image %s was built for the %s platform, not %s", path, img.Manifest.Platform, o.Platform.Name)
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
	opts := assemble.Options{Platform: o.Platform, CacheDir: o.CacheDir, Formats: o.Formats, Machine: o.Machine}
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
	vm.Options
	// Publish lists guest TCP ports to make reachable from the host (at
	// free 127.0.0.1 ports).
	Publish []int
}

// Machine is a real booted image: a vm.VM with its published ports and SSH.
type Machine struct {
	VM *vm.VM
}

var _ Guest = (*Machine)(nil)

// Boot starts img on backend. It returns once the machine runs.
func Boot(ctx context.Context, backend hypervisor.Backend, img *image.Image, o BootOptions) (*Machine, error) {
	opts := o.Options
	if opts.SSH {
		bootWithSSH(&opts)
	}
	for _, gp := range o.Publish {
		opts.Publish = append(opts.Publish, hypervisor.PortForward{HostAddr: "127.0.0.1", GuestPort: gp})
	}
	v, err := vm.Boot(ctx, backend, img, opts)
	if err != nil {
		return nil, err
	}
	return &Machine{VM: v}, nil
}

// WaitReady implements Guest.
func (m *Machine) WaitReady(ctx context.Context, timeout time.Duration) error {
	return m.VM.WaitReady(ctx, timeout)
}

// Stage implements Guest.
func (m *Machine) Stage() string { return m.VM.Stage().String() }

// Exec implements Guest.
func (m *Machine) Exec(ctx context.Context, cmd string, stdin []byte) (ExecResult, error) {
	return guestExec(ctx, m.VM, cmd, stdin)
}

// Stat implements Guest.
func (m *Machine) Stat(ctx context.Context, path string) (FileInfo, error) {
	return guestStat(ctx, m.VM, path)
}

// Addr implements Guest.
func (m *Machine) Addr(guestPort int) (string, error) { return m.VM.Machine.Endpoint(guestPort) }

// Shutdown implements Guest.
func (m *Machine) Shutdown(ctx context.Context, grace time.Duration) error {
	return m.VM.Shutdown(ctx, grace)
}

// Kill implements Guest.
func (m *Machine) Kill() error { return m.VM.Kill() }

// Exited implements Guest.
func (m *Machine) Exited() <-chan struct{} { return m.VM.Exited() }

// ExitErr implements Guest.
func (m *Machine) ExitErr() error { return m.VM.Machine.Err() }

// SnapshotUse says whether the machine was restored from a snapshot.
func (m *Machine) SnapshotUse() vm.SnapshotUse { return m.VM.SnapshotUse() }

// StoppedItself implements Guest.
func (m *Machine) StoppedItself() bool { return m.VM.StoppedItself() }
