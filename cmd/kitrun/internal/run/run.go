// Package run is `kitrun run`: boot a spec or an image and follow it.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/logfile"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/cmdutil"
	"github.com/kitrun/kitrun/cmd/kitrun/internal/supervise"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/lifecycle"
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/hypervisor/vm/termsafe"
)

// Options are run's flags and arguments.
type Options struct {
	Target  string // spec or image directory
	Timeout time.Duration
	Memory  string
	hypervisor.Resources
	// Format boots the image in a disk format instead of directly.
	Format     string
	Publish    []string
	ConsoleLog string
	UntilReady bool
	Grace      time.Duration
	// Detach runs the VM under a supervisor process and returns once it
	// is ready (see hypervisor/lifecycle); Name and StateDir go with it.
	Detach   bool
	Name     string
	StateDir string
	cmdutil.BuildOptions
}

// New returns the command.
func New() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "run SPEC|IMAGE",
		Short: "Boot a spec (built if needed) or an image directory",
		Long: `Boot a spec (built into kitrun's cache first when it changed) or an image
directory made by kitrun build. The console streams to stdout (or to
--console-log); at all-ready kitrun prints the boot timeline to stderr. The VM
stays up until the guest powers off or you press Ctrl-C, which powers it off
gracefully; with --until-ready kitrun powers it off as soon as every service
is ready.

With -d the VM runs detached, under its own supervisor process, and kitrun
returns once it is ready (or with the failure, with the same exit codes).
The console goes to its console.log; see kitrun ps, logs, console, pause,
resume, stop, kill, rm, inspect and prune.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Target = args[0]
			return Run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "deadline for reaching all-ready")
	f.StringVar(&o.Memory, "mem", hypervisor.FormatMemory(hypervisor.DefaultMemoryMiB), "guest memory (e.g. 128M, 1G)")
	f.IntVar(&o.CPUs, "cpus", hypervisor.DefaultCPUs, "virtual CPUs")
	f.StringVar(&o.Accel, "accel", hypervisor.DefaultAccel, "accelerator: auto (probe the host's: KVM, hvf on macOS, whpx on Windows; else TCG), kvm, hvf, whpx or tcg")
	f.StringVar(&o.Machine, "machine", "", "machine type (QEMU x86_64: q35, microvm; aarch64: virt)")
	f.StringVar(&o.Format, "format", "", "boot a disk format of the image (built if needed), e.g. raw-efi, iso-bios, qcow2")
	f.StringArrayVar(&o.Publish, "publish", nil, "forward a host port to a guest port: [ADDR:]HOSTPORT:GUESTPORT (ADDR defaults to 127.0.0.1)")
	f.StringVar(&o.ConsoleLog, "console-log", "", "write the console to this file instead of stdout")
	f.BoolVar(&o.UntilReady, "until-ready", false, "power off once every service is ready and exit 0")
	f.DurationVar(&o.Grace, "grace", 10*time.Second, "how long a graceful power-off may take before it is forced")
	f.BoolVarP(&o.Detach, "detach", "d", false, "run detached under a supervisor; return once ready")
	f.StringVar(&o.Name, "name", "", "with -d: the VM's name (default: the image name and a random suffix)")
	supervise.AddStateDirFlag(cmd, &o.StateDir)
	cmdutil.AddBuildFlags(cmd, &o.BuildOptions)
	return cmd
}

// Run boots the target and follows it until it ends.
func Run(ctx context.Context, o *Options, stdout, stderr io.Writer) (err error) {
	mem, err := hypervisor.ParseMemory(o.Memory)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	o.MemoryMiB = mem
	if o.Format == "" {
		o.Format = o.BackendOptions.DefaultFormat()
	}
	if o.Format != "" && o.Format != image.FormatDirect {
		o.Formats, o.ForMachine = append(o.Formats, o.Format), o.Resources.Machine
	}
	var publish []hypervisor.PortForward
	for _, p := range o.Publish {
		pf, err := hypervisor.ParsePortForward(p)
		if err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, err)
		}
		publish = append(publish, pf)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkDetachFlags(o); err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	img, err := cmdutil.LoadImage(ctx, o.Target, o.BuildOptions, stderr)
	if err != nil {
		return err
	}
	backend, err := o.BackendOptions.Open()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	if o.Detach {
		return runDetached(ctx, o, img, publish, stdout, stderr)
	}
	console := cmdutil.GuestText(stdout, termsafe.Strict)
	if o.ConsoleLog != "" {
		log, lerr := logfile.Open(o.ConsoleLog, logfile.Options{Limit: lifecycle.DefaultConsoleLimit})
		if lerr != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, lerr)
		}
		// A console log that lost writes fails the command, whatever the
		// guest did: the user asked for it.
		defer func() {
			if lerr := log.Close(); lerr != nil {
				fmt.Fprintf(stderr, "kitrun: %v\n", lerr)
				if err == nil {
					err = cmdutil.WithCode(cmdutil.ExitFailure, lerr)
				}
			}
		}()
		console = log
	}

	// The first Ctrl-C powers the guest off gracefully; kitrun's own exit
	// then takes QEMU with it in any case.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	v, err := vm.Boot(ctx, backend, img, vm.Options{
		Resources: o.Resources, Format: o.Format, Publish: publish, Console: console,
	})
	if err != nil {
		return err
	}
	info := v.Machine.Info()
	where := "machine " + info.ID
	if p := info.Process; p != nil {
		where = fmt.Sprintf("%s pid %d", info.Backend, p.PID)
	}
	fmt.Fprintf(stderr, "kitrun: booting %s on %s %s/%s (%s), accel %s (%s)\n", img.Manifest.Name, info.Backend, info.Arch, info.Machine, where, info.Accel, info.AccelReason)
	for _, p := range info.Published {
		fmt.Fprintf(stderr, "kitrun: guest port %d published on %s\n", p.GuestPort, p.Addr())
	}

	waitErr := v.WaitReady(sigCtx, o.Timeout)
	if waitErr != nil {
		shutdownErr := v.Shutdown(context.Background(), o.Grace)
		if errors.Is(waitErr, context.Canceled) {
			return cmdutil.WithCode(cmdutil.ExitInterrupted, errors.Join(errors.New("interrupted"), shutdownErr))
		}
		return waitErr
	}
	PrintTimeline(stderr, v.Timeline())
	if v.SSHKeys() != nil {
		if addr, key, known, err := v.SSHInfo(); err == nil {
			if host, port, err := net.SplitHostPort(addr); err == nil {
				fmt.Fprintf(stderr, "kitrun: ssh -i %s -o UserKnownHostsFile=%s -o IdentitiesOnly=yes -p %s root@%s\n", key, known, port, host)
			}
		}
	}
	if o.UntilReady {
		start := time.Now()
		if err := v.Shutdown(context.Background(), o.Grace); err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("ready, but the shutdown was not clean: %w", err))
		}
		fmt.Fprintf(stderr, "kitrun: ready; powered off cleanly in %s\n", time.Since(start).Round(time.Millisecond))
		return nil
	}
	select {
	case <-v.Exited():
		if err := v.Machine.Err(); err != nil {
			return cmdutil.WithCode(cmdutil.ExitEarlyExit, fmt.Errorf("machine exited: %w", err))
		}
		fmt.Fprintln(stderr, "kitrun: guest powered off")
		return nil
	case <-sigCtx.Done():
		fmt.Fprintln(stderr, "kitrun: powering off")
		if err := v.Shutdown(context.Background(), o.Grace); err != nil {
			return cmdutil.WithCode(cmdutil.ExitFailure, err)
		}
		return nil
	}
}

func checkDetachFlags(o *Options) error {
	if o.Detach {
		if o.UntilReady {
			return errors.New("-d and --until-ready do not go together")
		}
		if o.ConsoleLog != "" {
			return errors.New("-d writes the console to the VM's console.log (kitrun logs NAME); drop --console-log")
		}
		if o.Name != "" {
			return lifecycle.ValidateName(o.Name)
		}
		return nil
	}
	if o.Name != "" || o.StateDir != "" {
		return errors.New("--name and --state-dir go with -d")
	}
	return nil
}

// runDetached records the VM, starts its supervisor (this binary's hidden
// supervise command) and waits for ready or failure.
func runDetached(ctx context.Context, o *Options, img *image.Image, publish []hypervisor.PortForward, stdout, stderr io.Writer) error {
	store, err := supervise.Store(o.StateDir)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("finding the kitrun binary: %w", err))
	}
	backendOpts, err := hypervisor.ParseOptions(o.BackendOptions.Opts)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitFailure, err)
	}
	meta := lifecycle.Meta{
		Image: img.Dir, ImageName: img.Manifest.Name,
		KernelSHA256: img.Manifest.Kernel.SHA256, InitrdSHA256: img.Manifest.Initrd.SHA256,
		Arch: img.Arch.Name, Resources: o.Resources, Format: o.Format,
		Backend: o.BackendOptions.Backend, BackendOptions: backendOpts,
		Network: img.Manifest.Network, GuestSSHPort: img.Manifest.SSH,
		BootTimeout: lifecycle.Duration(o.Timeout), Grace: lifecycle.Duration(o.Grace),
	}
	if cmdutil.IsSpecPath(o.Target) {
		if abs, err := filepath.Abs(o.Target); err == nil {
			meta.Spec = abs
		}
	}
	if abs, err := filepath.Abs(img.Dir); err == nil {
		meta.Image = abs
	}
	for _, p := range publish {
		meta.Published = append(meta.Published, lifecycle.Port{HostAddr: p.HostAddr, HostPort: p.HostPort, GuestPort: p.GuestPort})
	}
	if len(publish) > 0 && !img.Networked() {
		return cmdutil.WithCode(cmdutil.ExitFailure, fmt.Errorf("--publish needs networking, and image %s has `network: none`; set `network: {mode: auto}` in its spec", img.Manifest.Name))
	}
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := lifecycle.StartOptions{Exe: exe, OnBooting: func(r lifecycle.Report) {
		fmt.Fprintf(stderr, "kitrun: booting %s as %s on %s %s/%s (supervisor pid %d, machine %s), accel %s (%s)\n",
			img.Manifest.Name, meta.Name, r.Backend, r.Arch, r.Machine, r.SupervisorPID, r.MachineID, r.Accel, r.AccelReason)
		for _, p := range r.Published {
			fmt.Fprintf(stderr, "kitrun: guest port %d published on %s:%d\n", p.GuestPort, p.HostAddr, p.HostPort)
		}
	}}
	var rep *lifecycle.Report
	for try := 0; ; try++ {
		meta.Name = o.Name
		if meta.Name == "" {
			meta.Name = lifecycle.GenerateName(img.Manifest.Name)
		}
		rep, err = store.Start(sigCtx, meta, opts)
		var exists *lifecycle.ExistsError
		if o.Name == "" && try < 5 && errors.As(err, &exists) {
			continue // a generated name clashed: draw another
		}
		break
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return cmdutil.WithCode(cmdutil.ExitInterrupted, fmt.Errorf("interrupted; VM %s stopped", meta.Name))
		}
		return supervise.Err(err)
	}
	PrintTimeline(stderr, rep.Timeline)
	fmt.Fprintf(stderr, "kitrun: %s is ready; `kitrun logs %s`, `kitrun stop %s`\n", meta.Name, meta.Name, meta.Name)
	fmt.Fprintln(stdout, meta.Name)
	return nil
}

// PrintTimeline writes the boot stages on both clocks.
func PrintTimeline(w io.Writer, marks []vm.Mark) {
	fmt.Fprintf(w, "%-32s %10s %10s\n", "stage", "host", "guest")
	for _, m := range marks {
		guest := "-"
		if m.Guest >= 0 {
			guest = fmt.Sprintf("%.3fs", m.Guest)
		}
		fmt.Fprintf(w, "%-32s %9.3fs %10s\n", m.Stage.String(), m.Host.Seconds(), guest)
	}
}
