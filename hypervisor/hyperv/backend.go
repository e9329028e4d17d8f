package hyperv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
)

// Options the backend takes (--backend-opt KEY=VALUE).
var Options = []string{"host", "key", "known-hosts", "pwsh", "switch", "vm-dir", "hardware"}

// DefaultSwitch is the switch networked guests are connected to: the one
// Windows 10 and 11 create with Hyper-V (DHCP and NAT to the host's
// network). Windows Server has none: name yours with switch=NAME.
const DefaultSwitch = "Default Switch"

// Backend runs machines as Hyper-V VMs.
type Backend struct {
	Driver Driver
	// Switch networked guests are connected to.
	Switch string
	// QEMUHardware: the Windows host is the test double, whose VMs are
	// QEMU machines (the platform then declares MachineGen2QEMU instead of
	// MachineGen2; see platform.go).
	QEMUHardware bool
}

var _ hypervisor.Backend = (*Backend)(nil)

func init() {
	hypervisor.Register("hyperv", func(o hypervisor.Options) (hypervisor.Backend, error) { return New(o) })
}

// New makes a backend from its options:
//
//	host=USER@HOST[:PORT]  run PowerShell on that Windows host over SSH (default: locally)
//	key=PATH               the SSH private key (with host=)
//	known-hosts=PATH       known_hosts file holding the host's key (with host=; required)
//	pwsh=PROGRAM           PowerShell to run (default: pwsh if installed, else powershell.exe)
//	switch=NAME            virtual switch for networked guests (default "Default Switch")
//	vm-dir=PATH            Windows directory for the VMs' files (default: Hyper-V's VirtualMachinePath\kitrun)
//	hardware=qemu          the host is kitrun's test double (QEMU machines; see the package documentation)
func New(o hypervisor.Options) (*Backend, error) {
	if err := o.Check("hyperv", Options...); err != nil {
		return nil, err
	}
	var r Runner
	if o["host"] != "" {
		sr, err := NewSSHRunner(o["host"], o["key"], o["known-hosts"], o["pwsh"])
		if err != nil {
			return nil, err
		}
		r = sr
	} else {
		if o["key"] != "" || o["known-hosts"] != "" {
			return nil, errors.New("hyperv: key= and known-hosts= go with host=USER@HOST")
		}
		pwsh := o["pwsh"]
		if pwsh == "" {
			pwsh = DefaultPwsh()
		}
		r = &LocalRunner{Pwsh: pwsh}
	}
	sw := o["switch"]
	if _, set := o["switch"]; !set {
		sw = DefaultSwitch
	}
	b := &Backend{Switch: sw}
	switch o["hardware"] {
	case "", "hyperv":
	case "qemu":
		b.QEMUHardware = true
	default:
		return nil, fmt.Errorf("hyperv: bad hardware=%q; valid: hyperv (default), qemu (kitrun's test double)", o["hardware"])
	}
	b.Driver = &PowerShellDriver{Runner: r, Switch: sw, Directory: o["vm-dir"]}
	return b, nil
}

// Name implements hypervisor.Backend.
func (b *Backend) Name() string { return "hyperv" }

var _ hypervisor.DiskBooter = (*Backend)(nil)

// DefaultFormat implements hypervisor.DiskBooter: Hyper-V boots no kernel
// directly; commands boot the vhdx when no format is asked for.
func (b *Backend) DefaultFormat() string { return "vhdx" }

// Platform implements hypervisor.Backend.
func (b *Backend) Platform(a arch.Arch) (platform.Platform, error) {
	return platformOf(a, b.QEMUHardware)
}

// Verify implements hypervisor.Backend.
func (b *Backend) Verify(ctx context.Context, a arch.Arch) error {
	if _, err := b.Platform(a); err != nil {
		return err
	}
	return b.Driver.Verify(ctx)
}

// Version implements hypervisor.Backend.
func (b *Backend) Version(ctx context.Context, a arch.Arch) (string, error) {
	return b.Driver.Version(ctx)
}

// vmName matches the VM names this backend makes, and keeps every name it
// passes to PowerShell free of wildcards (Get-VM -Name takes them).
var vmName = regexp.MustCompile(`^kitrun-[a-z0-9-]{1,80}$`)

func checkID(id string) error {
	if !vmName.MatchString(id) {
		return fmt.Errorf("hyperv: %q is not a machine ID (a VM name kitrun-…)", id)
	}
	return nil
}

// Destroy implements hypervisor.Backend: the VM is marked destroyed, turned
// off and removed with its files.
func (b *Backend) Destroy(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return b.Driver.Remove(ctx, id, true)
}

// Alive implements hypervisor.Backend.
func (b *Backend) Alive(ctx context.Context, id string) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	s, err := b.Driver.Status(ctx, id)
	if err != nil {
		return false, err
	}
	return s.Running(), nil
}

// formats are the disk formats a generation 2 VM boots, and whether as a
// DVD.
var formats = map[string]bool{"vhdx": false, "iso-efi": true}

// bootDisk checks the spec's image format and returns the file to boot.
func (b *Backend) bootDisk(spec hypervisor.Spec, machine string) (path string, dvd bool, err error) {
	img := spec.Image
	if spec.Format == "" || spec.Format == image.FormatDirect {
		return "", false, &hypervisor.UnsupportedError{Backend: "hyperv", What: "boot a kernel and initramfs directly",
			Hint: "Hyper-V boots disks: use --format vhdx (the default on this backend) or iso-efi"}
	}
	f, err := disk.Lookup(spec.Format)
	if err != nil {
		return "", false, err
	}
	dvd, ok := formats[f.Name]
	if !ok {
		return "", false, &hypervisor.UnsupportedError{Backend: "hyperv", What: "boot the " + f.Name + " format",
			Hint: "a generation 2 VM boots vhdx or iso-efi"}
	}
	if err := f.For(img.Arch); err != nil {
		return "", false, err
	}
	if spec.ExtraCmdline != "" {
		return "", false, fmt.Errorf("a %s image carries its kernel command line; extra kernel arguments need direct kernel boot, which Hyper-V does not do", f.Name)
	}
	path, err = img.Disk(f.Name)
	if err != nil {
		return "", false, err
	}
	if d := img.Manifest.Disks[f.Name]; d.Machine != "" && d.Machine != machine {
		return "", false, fmt.Errorf("the %s image of %s is wired for machine %s, not %s; rebuild it with --machine %s", f.Name, img.Manifest.Name, d.Machine, machine, machine)
	}
	return path, dvd, nil
}

// newName makes a VM name from the image's name and a random suffix.
func newName(image string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(image) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "vm"
	}
	return "kitrun-" + name + "-" + hex.EncodeToString(suffix[:])
}

// Start implements hypervisor.Backend: the image is uploaded into the VM's
// directory on the Windows host, the COM ports' relays start waiting, and
// one script creates, wires and starts the VM.
func (b *Backend) Start(ctx context.Context, spec hypervisor.Spec) (hypervisor.Machine, error) {
	img := spec.Image
	if img == nil {
		return nil, errors.New("hyperv: no image to boot")
	}
	if img.Manifest.Platform != "hyperv" {
		return nil, fmt.Errorf("image %s was built for the %s platform, not hyperv; rebuild it with --backend hyperv", img.Manifest.Name, img.Manifest.Platform)
	}
	p, err := b.Platform(img.Arch)
	if err != nil {
		return nil, err
	}
	res := spec.Resources.WithDefaults()
	machineName, _, err := p.Machine(res.Machine)
	if err != nil {
		return nil, err
	}
	switch res.Accel {
	case "auto", "hyperv":
	default:
		return nil, fmt.Errorf("hyperv: accelerator %q: Hyper-V has one, hardware virtualization; use --accel auto", res.Accel)
	}
	if res.MemoryMiB%2 != 0 {
		return nil, fmt.Errorf("hyperv: memory must be a multiple of 2 MiB (got %d MiB)", res.MemoryMiB)
	}
	path, dvd, err := b.bootDisk(spec, machineName)
	if err != nil {
		return nil, err
	}
	if err := checkSeed(spec.Seed, img.Manifest.Disks[spec.Format].Cmdline); err != nil {
		return nil, err
	}
	published, err := hypervisor.ResolvePorts(spec.Publish)
	if err != nil {
		return nil, err
	}
	networked := img.Networked()
	if len(published) > 0 && !networked {
		return nil, fmt.Errorf("publishing ports needs networking, and image %s has none", img.Manifest.Name)
	}
	version, err := b.Driver.Version(ctx)
	if err != nil {
		return nil, err
	}

	name := newName(img.Manifest.Name)
	m := &machine{
		b: b, name: name,
		info: hypervisor.Info{
			Backend: "hyperv", ID: name, Arch: img.Arch.Name, Machine: machineName, Format: spec.Format,
			Accel: "hyperv", AccelReason: "Hyper-V runs every guest with hardware virtualization (" + version + ")",
			Version: version, Published: published,
		},
		events:   make(chan hypervisor.BackendEvent, 64),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		conEnded: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			m.closeStreams()
			m.closeListeners()
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			b.Driver.Remove(rctx, name, false)
			cancel()
		}
	}()

	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	file := "disk.vhdx"
	if dvd {
		file = "boot.iso"
	}
	up, err := b.Driver.Upload(ctx, name, file, f, st.Size())
	f.Close()
	if err != nil {
		return nil, err
	}

	// This boot's seed, on a disk of its own beside the boot disk (and
	// removed with it, by Remove). An image that reads its seed from a
	// disk gets one even without a seed, an empty one: kitinit then knows
	// at once there is none instead of looking for a disk that never
	// comes.
	seedPath := ""
	if len(spec.Seed) > 0 || initproto.CmdlineSeed(img.Manifest.Disks[spec.Format].Cmdline) == initproto.SeedDisk {
		sd, err := seedDisk(ctx, spec.Seed)
		if err != nil {
			return nil, err
		}
		su, err := b.Driver.Upload(ctx, name, "seed.vhdx", bytes.NewReader(sd), int64(len(sd)))
		if err != nil {
			return nil, err
		}
		seedPath = su.Path
	}

	if m.console, err = b.Driver.OpenCOM(ctx, name, 1); err != nil {
		return nil, fmt.Errorf("hyperv: console (COM1): %w", err)
	}
	channel := !spec.NoChannel
	if channel {
		if m.channel, err = b.Driver.OpenCOM(ctx, name, 2); err != nil {
			return nil, fmt.Errorf("hyperv: event channel (COM2): %w", err)
		}
	}
	for _, pf := range published {
		if err := m.listen(pf); err != nil {
			return nil, err
		}
	}
	sw := ""
	if networked {
		sw = b.Switch
	}
	m.start = time.Now()
	status, err := b.Driver.Start(ctx, VMConfig{
		Name: name, Directory: up.Directory, MemoryBytes: int64(res.MemoryMiB) << 20, CPUs: res.CPUs,
		Disk: up.Path, DVD: dvd, Seed: seedPath, Channel: channel, Switch: sw,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	m.info.Started = m.start
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvVMMReady, Detail: "VM " + name + " " + status.State})
	go m.watch()
	return m, nil
}
