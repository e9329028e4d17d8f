// Package cmdutil holds what kitrun's commands share: exit codes, the
// mapping of library errors to them, and loading a spec or an image from a
// command-line argument.
package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
	_ "github.com/kitrun/kitrun/hypervisor/hyperv" // --backend hyperv
	_ "github.com/kitrun/kitrun/hypervisor/qemu"   // the default backend
	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/guestbin"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// Exit codes, each distinct and documented in README.md.
const (
	ExitOK            = 0
	ExitFailure       = 1 // usage or any other error
	ExitBuild         = 2 // the spec or the build failed
	ExitBootTimeout   = 3 // the boot deadline passed
	ExitServiceFailed = 4 // a service, an onboot task or kitinit itself failed
	ExitPanic         = 5 // the guest kernel panicked
	ExitEarlyExit     = 6 // the machine exited before all-ready
	ExitBenchFailed   = 7 // kitrun bench: some runs failed (they are reported)
	ExitRegression    = 8 // kitrun bench compare: a significant regression
	ExitTestsFailed   = 9 // kitrun test: some tests failed (each is reported)
	ExitInterrupted   = 130
)

// Exit codes of the VM lifecycle commands (run -d, ps, stop, rm, …).
const (
	ExitNoSuchVM     = 20 // no VM by that name
	ExitVMExists     = 21 // the VM name is taken
	ExitStateCorrupt = 22 // the VM's state files are unreadable
	ExitVMState      = 23 // the VM's state does not allow the command
	ExitVMBusy       = 24 // another kitrun command holds the VM's lock
)

// ExitError carries an exit code through cobra.
type ExitError struct {
	Code int
	Err  error
}

// Error is empty for a bare exit code (a remote command's status, say).
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// WithCode wraps err with an exit code.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// CodeOf maps an error to kitrun's exit code.
func CodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var (
		te *vm.TimeoutError
		se *vm.ServiceError
		ke *vm.TaskError
		ge *vm.GuestError
		pe *vm.PanicError
		xe *vm.ExitedError
		sp *spec.Errors
	)
	switch {
	case errors.As(err, &sp):
		return ExitBuild
	case errors.As(err, &te):
		return ExitBootTimeout
	case errors.As(err, &se), errors.As(err, &ke), errors.As(err, &ge):
		return ExitServiceFailed
	case errors.As(err, &pe):
		return ExitPanic
	case errors.As(err, &xe):
		return ExitEarlyExit
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitFailure
}

// IsSpecPath says whether a command-line argument names a spec file rather
// than an image directory.
func IsSpecPath(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".yml" || ext == ".yaml"
}

// BackendOptions choose the backend that runs machines.
type BackendOptions struct {
	Backend string
	// Opts are the backend's own settings, KEY=VALUE.
	Opts []string
}

// Open opens the chosen backend.
func (o BackendOptions) Open() (hypervisor.Backend, error) {
	opts, err := hypervisor.ParseOptions(o.Opts)
	if err != nil {
		return nil, err
	}
	return hypervisor.Open(o.Backend, opts)
}

// DefaultFormat is the image format to boot when none is asked for: the
// backend's own where it boots disk images only (hypervisor.DiskBooter),
// else "" (direct kernel boot).
func (o BackendOptions) DefaultFormat() string {
	b, err := o.Open()
	if err != nil {
		return "" // Open fails again, and says why, where it matters
	}
	if d, ok := b.(hypervisor.DiskBooter); ok {
		return d.DefaultFormat()
	}
	return ""
}

// AddBackendFlags adds the flags that choose a backend.
func AddBackendFlags(cmd *cobra.Command, o *BackendOptions) {
	cmd.Flags().StringVar(&o.Backend, "backend", hypervisor.DefaultBackend, "what runs the machines: "+strings.Join(hypervisor.Backends(), ", "))
	cmd.Flags().StringArrayVar(&o.Opts, "backend-opt", nil, "a backend setting, KEY=VALUE (repeatable)")
}

// BuildOptions are the flags every command that may build shares.
type BuildOptions struct {
	Arch        string
	Compression string
	CacheDir    string
	// Formats are disk formats (boot/disk) built beside the kernel and
	// initramfs, for ForMachine ("" is the platform's default machine):
	// a disk image carries its command line, wired for one machine.
	Formats    []string
	ForMachine string
	// Offline takes OCI images from kitrun's blob cache only.
	Offline bool
	BackendOptions
}

// AddBuildFlags adds the flags every building command shares.
func AddBuildFlags(cmd *cobra.Command, o *BuildOptions) {
	cmd.Flags().StringVar(&o.Arch, "arch", "", "target architecture: "+strings.Join(arch.Names(), ", ")+" (default: the host's)")
	cmd.Flags().StringVar(&o.Compression, "compression", "", "initramfs compression: zstd (default), gzip, xz, lz4, none")
	cmd.Flags().StringVar(&o.CacheDir, "cache-dir", "", "kitrun's cache (default $KITRUN_CACHE or ~/.cache/kitrun)")
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "take OCI images (image:) from the cache only; a registry image must have been pulled before")
	AddBackendFlags(cmd, &o.BackendOptions)
}

// Target opens the backend and returns it with the platform images are
// built for.
func (o BuildOptions) Target() (hypervisor.Backend, platform.Platform, error) {
	a := arch.Host()
	if o.Arch != "" {
		var err error
		if a, err = arch.Lookup(o.Arch); err != nil {
			return nil, platform.Platform{}, err
		}
	}
	b, err := o.Open()
	if err != nil {
		return nil, platform.Platform{}, err
	}
	p, err := b.Platform(a)
	if err != nil {
		return nil, platform.Platform{}, err
	}
	return b, p, nil
}

func (o BuildOptions) assembleOptions(plat platform.Platform) assemble.Options {
	return assemble.Options{
		Platform: plat, Compression: o.Compression, CacheDir: o.CacheDir, Formats: o.Formats, Machine: o.ForMachine,
		Offline: o.Offline,
	}
}

// Build parses and assembles a spec into outDir for the backend's
// platform. Errors carry ExitBuild.
func Build(ctx context.Context, specPath, outDir string, o BuildOptions) (*assemble.Result, error) {
	_, plat, err := o.Target()
	if err != nil {
		return nil, WithCode(ExitFailure, err)
	}
	s, err := spec.Parse(specPath)
	if err != nil {
		return nil, WithCode(ExitBuild, err)
	}
	res, err := assemble.Build(ctx, s, outDir, o.assembleOptions(plat))
	if err != nil {
		return nil, WithCode(ExitBuild, err)
	}
	return res, nil
}

// GuestOrigin says, for a build log, which of kitrun's own guest programs
// were built from a kitrun checkout instead of taken from the copies
// embedded in kitrun; "" when all were embedded.
func GuestOrigin(res *assemble.Result) string {
	var names []string
	for _, g := range res.Image.Manifest.Guest {
		if g.From == guestbin.FromSource {
			names = append(names, g.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s built from the kitrun checkout %s, whose sources differ from the embedded copies (`make generate` updates those)",
		strings.Join(names, ", "), res.GuestCheckout)
}

// LoadImage takes a spec (built into kitrun's image cache, a no-op when
// unchanged; see assemble.BuildCached) or an image directory. An image from
// the cache is kept under its content digest and pinned until this process
// exits: later builds, of this spec or of another with the same name, never
// change it.
func LoadImage(ctx context.Context, arg string, o BuildOptions, log io.Writer) (*image.Image, error) {
	if !IsSpecPath(arg) {
		if st, err := os.Stat(arg); err == nil && !st.IsDir() {
			return nil, WithCode(ExitFailure, fmt.Errorf("%s: expected a spec (.yml) or an image directory", arg))
		}
		img, err := image.Load(arg)
		if err != nil {
			return nil, WithCode(ExitFailure, err)
		}
		if o.Arch != "" {
			if a, err := arch.Lookup(o.Arch); err == nil && a.Name != img.Arch.Name {
				return nil, WithCode(ExitFailure, fmt.Errorf("image %s is for %s, not %s", arg, img.Arch.Name, a.Name))
			}
		}
		return img, nil
	}
	_, plat, err := o.Target()
	if err != nil {
		return nil, WithCode(ExitFailure, err)
	}
	s, err := spec.Parse(arg)
	if err != nil {
		return nil, WithCode(ExitBuild, err)
	}
	res, err := assemble.BuildCached(ctx, s, o.assembleOptions(plat))
	if err != nil {
		return nil, WithCode(ExitBuild, err)
	}
	if log != nil {
		how := "built"
		if res.Cached {
			how = "up to date"
		}
		fmt.Fprintf(log, "kitrun: image %s (%s) %s in %s\n", res.Image.Manifest.Name, res.Image.Arch.Name, how, res.Took.Round(1e6))
		if note := GuestOrigin(res); note != "" {
			fmt.Fprintf(log, "kitrun: %s\n", note)
		}
	}
	return res.Image, nil
}

// AssembleOptions are the assembler's options for the target these flags
// name (for commands that inspect a spec's image without building it).
func (o BuildOptions) AssembleOptions() (assemble.Options, error) {
	_, plat, err := o.Target()
	if err != nil {
		return assemble.Options{}, err
	}
	return o.assembleOptions(plat), nil
}
