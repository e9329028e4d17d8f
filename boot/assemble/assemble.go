// Package assemble turns a validated spec into a bootable image directory:
// it resolves the kernel and the modules the image needs, builds or collects
// every program, lays out files, writes kitinit's configuration, and packs it
// all into a compressed newc initramfs with kitrun's own cpio writer — no
// root, no Docker, no external tools.
//
// The output is reproducible: entries are sorted, times and owners fixed, and
// programs built with -trimpath, so the same inputs give byte-identical
// images. A content-addressed cache keyed by the initramfs's full listing
// (names, modes, owners and content hashes) skips packing and compression
// when nothing changed.
//
// Build writes the image into a directory of the user's, replacing only an
// image kitrun wrote there; BuildCached keeps it in kitrun's image cache
// under its content digest (see imagecache), for the commands that boot a
// spec.
package assemble

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/gobuild"
	"github.com/kitrun/kitrun/boot/guestbin"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/imagecache"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/kernel"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/boot/spec"
)

// Options steer a build.
type Options struct {
	// Platform is what the image will boot on (a hypervisor backend's
	// Platform for the target arch): it decides the modules kitrun's
	// devices need and the network `network: auto` gives. Required.
	Platform platform.Platform
	// CacheDir holds kitrun's caches (built programs, unpacked kernels,
	// packed initramfs images); DefaultCacheDir() when empty.
	CacheDir string
	// KernelDir holds downloaded kernel .debs; CacheDir/kernels when empty.
	KernelDir string
	// Compression of the initramfs; DefaultCompression when empty.
	Compression string
	// KitrunSource is a kitrun checkout whose guest programs (kitinit,
	// kitsshd) are built from source when they differ from the copies
	// embedded in kitrun; see guestbin.FindCheckout for what is used when
	// it is empty.
	KitrunSource string
	// ExtraFiles are added to the image after the spec's own. They are
	// part of the image (and its cache key): per-boot material such as SSH
	// keys goes through vm.Options.ExtraFiles instead.
	ExtraFiles []ExtraFile
	// SSH puts the guest SSH server in the image even when the spec does
	// not ask for it (the test harness forces it on). See addSSHServer.
	SSH bool
	// Formats are disk formats (boot/disk) to build into the image
	// directory beside the kernel and initramfs, for the platform's
	// Machine ("" is its default).
	Formats []string
	Machine string
	// PackageDir holds the Debian packages boot loaders come from;
	// CacheDir/packages when empty.
	PackageDir string
	// Offline takes OCI images from the blob store only (ociimage).
	Offline bool
}

// ExtraFile is a file the caller adds to the image.
type ExtraFile struct {
	Path   string
	Data   []byte
	Mode   uint32
	Origin string
}

// Result is what Build made.
type Result struct {
	Image *image.Image
	// Cached is true when the initramfs came from the cache.
	Cached bool
	// Took is the wall time of the build.
	Took time.Duration
	// GuestCheckout is the kitrun checkout that some of kitrun's own
	// programs were built from because their sources differ from the
	// embedded copies' (Image.Manifest.Guest says which); "" when all
	// are embedded.
	GuestCheckout string
}

// DefaultCacheDir is $XDG_CACHE_HOME/kitrun (or ~/.cache/kitrun).
func DefaultCacheDir() string {
	if d := os.Getenv("KITRUN_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "kitrun")
}

// Build assembles s into outDir/<s.Name>/ and returns the image. What is at
// outDir/<s.Name> is replaced only when it is an image kitrun wrote (see
// image.CheckReplaceable); anything else is an *image.NotOursError and is
// left untouched. The new image appears whole, by rename.
func Build(ctx context.Context, s *spec.Spec, outDir string, opts Options) (*Result, error) {
	start := time.Now()
	dest := filepath.Join(outDir, s.Name)
	// Before the work, so that a refused build costs nothing; and again
	// right before the replacement.
	if err := image.CheckReplaceable(dest); err != nil {
		return nil, err
	}
	b, err := prepare(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	files, err := b.imageFiles()
	if err != nil {
		return nil, err
	}
	if img, ok := files.alreadyAt(dest); ok {
		return &Result{Image: img, Cached: files.cached, Took: time.Since(start), GuestCheckout: b.guestCheckout}, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := atomicfile.TempDir(dest)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := files.stage(tmp); err != nil {
		return nil, err
	}
	if err := replaceImageDir(tmp, dest); err != nil {
		return nil, err
	}
	img, err := image.Load(dest)
	if err != nil {
		return nil, err
	}
	return &Result{Image: img, Cached: files.cached, Took: time.Since(start), GuestCheckout: b.guestCheckout}, nil
}

// BuildCached assembles s into kitrun's image cache (CacheDir/images/ARCH,
// see imagecache), where the image is kept under its content digest, and
// pins it for the life of this process: a rebuild of the same spec, or of
// another with the same name, never changes or removes it. An unchanged
// spec costs no writes at all. Entries nobody uses any more are swept.
func BuildCached(ctx context.Context, s *spec.Spec, opts Options) (*Result, error) {
	start := time.Now()
	b, err := prepare(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	files, err := b.imageFiles()
	if err != nil {
		return nil, err
	}
	cache := imagecache.New(filepath.Join(b.opts.CacheDir, "images", b.arch.Name))
	digest, err := files.digest()
	if err != nil {
		return nil, err
	}
	img, err := cache.Get(s.Name, digest)
	if errors.Is(err, fs.ErrNotExist) {
		var tmp string
		if tmp, err = cache.Stage(s.Name, digest); err == nil {
			defer os.RemoveAll(tmp) // a no-op once renamed
			if err = files.stage(tmp); err == nil {
				img, err = cache.Put(tmp, s.Name, digest)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	// Cleaning up is not this build's job to fail.
	_, _ = cache.Sweep(imagecache.DefaultGrace)
	return &Result{Image: img, Cached: files.cached, Took: time.Since(start), GuestCheckout: b.guestCheckout}, nil
}

// prepare checks the options and collects everything the image holds.
func prepare(ctx context.Context, s *spec.Spec, opts Options) (*builder, error) {
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.KernelDir == "" {
		opts.KernelDir = filepath.Join(opts.CacheDir, "kernels")
	}
	if opts.Compression == "" {
		opts.Compression = DefaultCompression
	}
	comp, err := lookupCompressor(opts.Compression)
	if err != nil {
		return nil, err
	}
	if opts.Platform.Name == "" {
		return nil, errors.New("assemble: no target platform (Options.Platform: a backend's Platform for the arch)")
	}
	// The spec's formats, then those asked for beside them; each must
	// boot on the arch.
	formats := slices.Clone(s.Formats)
	for i, name := range formats {
		f, err := disk.Lookup(name)
		if err == nil {
			err = f.For(opts.Platform.Arch)
		}
		if err != nil {
			return nil, posErr(s.FormatsPos[i], err)
		}
	}
	for _, name := range opts.Formats {
		if !slices.Contains(formats, name) {
			formats = append(formats, name)
		}
	}
	// A format made from another (vhdx from raw-efi) brings that one
	// into the image too (disk.Build writes both): the image's digest and
	// the cache's check of its disks count it.
	for _, name := range slices.Clone(formats) {
		if f, err := disk.Lookup(name); err == nil && f.Base != "" && !slices.Contains(formats, f.Base) {
			formats = append(formats, f.Base)
		}
	}
	opts.Formats = formats
	a := opts.Platform.Arch
	b := &builder{
		ctx: ctx, spec: s, opts: opts, arch: a, comp: comp,
		gob:   &gobuild.Builder{CacheDir: filepath.Join(opts.CacheDir, "go", a.GOARCH)},
		files: map[string]*entry{},
	}
	network := s.Network
	if b.sshEnabled() && network.Mode != spec.NetworkAuto {
		// SSH reaches the guest through a published port, so an SSH image
		// gets the NIC even with `network: none`; the manifest then says
		// "auto".
		network = spec.Network{Mode: spec.NetworkAuto, Pos: s.Network.Pos}
	}
	if b.network, err = resolveNetwork(network, opts.Platform); err != nil {
		return nil, err
	}
	if err := b.collect(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// entry is one initramfs entry and where its bytes come from.
type entry struct {
	rec    cpio.Record
	src    string // host file for regular files whose Data is not in memory
	sum    string // sha256 of the content
	origin string
}

type builder struct {
	ctx    context.Context
	spec   *spec.Spec
	opts   Options
	arch   arch.Arch
	comp   compressor
	gob    *gobuild.Builder
	kernel *kernel.Kernel
	files  map[string]*entry
	config initproto.Config
	mods   []string // names of boot-time modules, for the manifest
	// guest are kitrun's own programs in the image, for the manifest;
	// guestCheckout is the checkout any of them was built from.
	guest         []image.GuestProgram
	guestCheckout string
	// network is the guest's NIC configuration, nil without one: the
	// spec's over the platform's (forced on by SSH).
	network *initproto.Network
	// images are the OCI images of image programs, for the manifest.
	images []image.OCIImage
}

// collect gathers every entry of the initramfs and kitinit's configuration.
func (b *builder) collect(ctx context.Context) error {
	if err := b.resolveKernel(ctx); err != nil {
		return err
	}
	if err := b.addModules(); err != nil {
		return err
	}
	b.addSkeleton()
	if err := b.addKitrunProgram(ctx, guestbin.Kitinit, "/init"); err != nil {
		return err
	}
	s := b.spec
	b.config.Hostname = s.Hostname
	b.config.Network = b.network
	for i, f := range s.Files {
		if err := b.addSpecFile(f, fmt.Sprintf("files[%d] %s", i, f.Path)); err != nil {
			return posErr(f.Pos, err)
		}
	}
	for _, e := range b.opts.ExtraFiles {
		b.put(&entry{rec: cpio.File(e.Path, e.Data, e.Mode), sum: sum(e.Data), origin: e.Origin})
	}
	for _, t := range s.Onboot {
		task, err := b.task(ctx, t, "onboot", "onboot task "+t.Name)
		if err != nil {
			return err
		}
		b.config.Onboot = append(b.config.Onboot, task)
	}
	for _, t := range s.Onshut {
		task, err := b.task(ctx, t, "onshutdown", "onshutdown task "+t.Name)
		if err != nil {
			return err
		}
		b.config.Onshutdown = append(b.config.Onshutdown, task)
	}
	for _, sv := range s.Services {
		svc, err := b.service(ctx, sv)
		if err != nil {
			return err
		}
		b.config.Services = append(b.config.Services, svc)
	}
	if b.sshEnabled() {
		if err := b.addSSHServer(ctx); err != nil {
			return err
		}
	}
	cfg, err := json.MarshalIndent(b.config, "", "  ")
	if err != nil {
		return err
	}
	b.put(&entry{rec: cpio.File(initproto.ConfigPath, append(cfg, '\n'), 0o644), sum: sum(cfg), origin: "kitinit configuration"})
	return b.checkCommands()
}

// resolveKernel finds the kernel the spec names and unpacks it once.
func (b *builder) resolveKernel(ctx context.Context) error {
	k := b.spec.Kernel
	var err error
	switch {
	case k.Package != "":
		var deb string
		deb, err = kernel.FindDeb(b.opts.KernelDir, b.arch.KernelPackage(k.Package), b.arch.KernelFlavour)
		if err == nil {
			b.kernel, err = kernel.FromDeb(ctx, deb, filepath.Join(b.opts.CacheDir, "kernel-trees"))
		}
	case k.Deb != "":
		b.kernel, err = kernel.FromDeb(ctx, k.Deb, filepath.Join(b.opts.CacheDir, "kernel-trees"))
	default:
		b.kernel, err = kernel.FromFiles(k.Image, k.ModulesDir)
	}
	if err != nil {
		return posErr(k.Pos, err)
	}
	return nil
}

// addModules puts in the modules the spec asks for, those every machine type
// of the arch needs for kitrun's channel (and NIC, with networking), and the
// power button's, each with its dependencies.
func (b *builder) addModules() error {
	k := b.spec.Kernel
	if b.kernel.ModulesDir == "" {
		if len(k.Modules) > 0 {
			return posErr(k.Pos, errors.New("kernel.modules needs a modules tree: give kernel.modules_dir, or use a .deb"))
		}
		return nil
	}
	ix, err := b.kernel.Modules(kernel.IndexCacheDir(filepath.Join(b.opts.CacheDir, "modindex")))
	if err != nil {
		return err
	}
	var errs []*spec.Error
	var boot []kernel.Module
	for i, name := range k.Modules {
		mods, err := ix.Resolve(name)
		if err != nil {
			pos := k.Pos
			if i < len(k.ModulesPos) {
				pos = k.ModulesPos[i]
			}
			errs = append(errs, &spec.Error{Pos: pos, Msg: err.Error()})
			continue
		}
		boot = append(boot, mods...)
	}
	if len(errs) > 0 {
		return &spec.Errors{List: errs}
	}
	machineMods, err := ix.Resolve(b.opts.Platform.Modules(b.network != nil)...)
	if err != nil {
		return fmt.Errorf("modules the %s platform needs on %s: %v", b.opts.Platform.Name, b.arch.Name, err)
	}
	late, err := ix.Resolve(lateModules(ix)...)
	if err != nil {
		return fmt.Errorf("power-button modules: %v", err)
	}
	b.config.Available = map[string]initproto.Module{}
	add := func(m kernel.Module) string {
		guest := path.Join("/lib/modules", b.kernel.Version, filepath.ToSlash(m.Path))
		if _, ok := b.files[guest]; !ok {
			b.addHostFile(guest, filepath.Join(b.kernel.ModulesDir, m.Path), 0o644, "kernel module "+m.Name)
		}
		b.config.Available[m.Name] = initproto.Module{Path: guest, Depends: m.Depends}
		return guest
	}
	seen := map[string]bool{}
	for _, m := range boot {
		p := add(m)
		if !seen[m.Name] {
			seen[m.Name] = true
			b.config.Modules = append(b.config.Modules, p)
			b.mods = append(b.mods, m.Name)
		}
	}
	for _, m := range machineMods {
		add(m)
	}
	for _, m := range late {
		b.config.LateModules = append(b.config.LateModules, add(m))
	}
	// Dependencies that are built in have no file; kitinit must not wait
	// for them.
	for name, m := range b.config.Available {
		var deps []string
		for _, d := range m.Depends {
			if _, ok := b.config.Available[d]; ok {
				deps = append(deps, d)
			}
		}
		m.Depends = deps
		b.config.Available[name] = m
	}
	return nil
}

// lateModules are loaded by kitinit after all-ready: evdev and the ACPI
// power button, so that QEMU's system_powerdown reaches kitinit. Those the
// kernel lacks are skipped.
func lateModules(ix *kernel.Index) []string {
	var out []string
	for _, n := range []string{"evdev", "button"} {
		if _, err := ix.Resolve(n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// addSkeleton lays out the directories and nodes every image has.
func (b *builder) addSkeleton() {
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/etc", "/root", "/usr/bin", "/usr/sbin", "/var"} {
		mode := uint32(0o755)
		if d == "/tmp" {
			mode = 0o1777
		}
		if d == "/root" {
			mode = 0o700
		}
		b.put(&entry{rec: cpio.Dir(d, mode), origin: "kitrun"})
	}
	// The kernel opens /dev/console for init's stdio before devtmpfs is
	// mounted; without this node kitinit starts with no output at all.
	b.put(&entry{rec: cpio.CharDev("/dev/console", 0o600, 5, 1), origin: "kitrun"})
	// Go's runtime opens /dev/null for any of fds 0-2 that is closed, and
	// dies without it: PID 1 dying is a kernel panic.
	b.put(&entry{rec: cpio.CharDev("/dev/null", 0o666, 1, 3), origin: "kitrun"})
	for _, l := range []struct{ name, target string }{{"/bin", "usr/bin"}, {"/sbin", "usr/sbin"}} {
		b.put(&entry{rec: cpio.Symlink(l.name, l.target), origin: "kitrun"})
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	b.put(&entry{rec: cpio.File("/etc/passwd", []byte(passwd), 0o644), sum: sum([]byte(passwd)), origin: "kitrun"})
	b.put(&entry{rec: cpio.File("/etc/group", []byte(group), 0o644), sum: sum([]byte(group)), origin: "kitrun"})
	host := b.spec.Hostname + "\n"
	b.put(&entry{rec: cpio.File("/etc/hostname", []byte(host), 0o644), sum: sum([]byte(host)), origin: "kitrun"})
}

func (b *builder) addSpecFile(f spec.File, origin string) error {
	switch {
	case f.Directory:
		b.put(&entry{rec: owned(cpio.Dir(f.Path, f.Mode), f.UID, f.GID), origin: origin})
	case f.Symlink != "":
		b.put(&entry{rec: owned(cpio.Symlink(f.Path, f.Symlink), f.UID, f.GID), origin: origin})
	case f.Source != "":
		if err := b.addHostFile(f.Path, f.Source, f.Mode, origin); err != nil {
			return err
		}
		b.files[f.Path].rec = owned(b.files[f.Path].rec, f.UID, f.GID)
	default:
		data := []byte(*f.Contents)
		b.put(&entry{rec: owned(cpio.File(f.Path, data, f.Mode), f.UID, f.GID), sum: sum(data), origin: origin})
	}
	return nil
}

func owned(r cpio.Record, uid, gid int) cpio.Record {
	r.UID, r.GID = uint32(uid), uint32(gid)
	return r
}

// addHostFile adds a host file, hashing it now and reading it only when the
// initramfs is actually packed (a cache hit never reads it again).
func (b *builder) addHostFile(guest, host string, mode uint32, origin string) error {
	h, size, err := hashFile(host)
	if err != nil {
		return err
	}
	rec := cpio.File(guest, nil, mode)
	b.put(&entry{rec: rec, src: host, sum: h, origin: origin})
	b.files[guest].rec.Data = nil
	b.files[guest].rec.Mode = cpio.TypeReg | (mode & cpio.PermMask)
	_ = size
	return nil
}

func (b *builder) put(e *entry) {
	e.rec.Name = path.Clean("/" + strings.TrimPrefix(e.rec.Name, "/"))
	b.files[e.rec.Name] = e
}

// program puts a task's or service's program in the image and says how to
// run it.
func (b *builder) program(ctx context.Context, p spec.Program, kind, name, origin string) (initproto.Exec, error) {
	if p.Image != nil {
		return b.imageProgram(p, kind, name, origin)
	}
	x := initproto.Exec{Args: p.Args, Env: p.Env, Dir: p.Dir, Sandbox: sandboxConfig(p.Sandbox, "")}
	uid, gid, err := ids(p.User, p.Group)
	if err != nil {
		return x, posErr(p.Pos, err)
	}
	x.UID, x.GID = uid, gid
	switch {
	case p.Command != "":
		x.Path = p.Command
	case p.Go != "":
		bin, err := b.gob.Build(ctx, p.Go, b.arch.GOARCH)
		if err != nil {
			return x, posErr(p.Pos, err)
		}
		x.Path = p.Install
		if err := b.addHostFile(p.Install, bin, 0o755, origin); err != nil {
			return x, err
		}
	case p.Binary != "":
		hb, err := inspectBinary(p.Binary, b.arch)
		if err != nil {
			return x, posErr(p.Pos, err)
		}
		x.Path = p.Install
		if err := b.addHostFile(p.Install, p.Binary, 0o755, origin); err != nil {
			return x, posErr(p.Pos, err)
		}
		for guest, host := range hb.libs {
			if _, ok := b.files[guest]; !ok {
				if err := b.addHostFile(guest, host, 0o755, "shared library of "+origin); err != nil {
					return x, posErr(p.Pos, err)
				}
			}
		}
	}
	return x, nil
}

func (b *builder) task(ctx context.Context, t spec.Task, kind, origin string) (initproto.Task, error) {
	x, err := b.program(ctx, t.Program, kind, t.Name, origin)
	return initproto.Task{Name: t.Name, Exec: x, Timeout: initproto.Duration(t.Timeout)}, err
}

func (b *builder) service(ctx context.Context, s spec.Service) (initproto.Service, error) {
	x, err := b.program(ctx, s.Program, "services", s.Name, "service "+s.Name)
	svc := initproto.Service{
		Name: s.Name, Exec: x,
		Restart: initproto.Restart{
			Policy: s.Restart.Policy, Backoff: initproto.Duration(s.Restart.Backoff),
			MaxBackoff: initproto.Duration(s.Restart.MaxBackoff), MaxRestarts: s.Restart.MaxRestarts,
		},
	}
	if r := s.Ready; r != nil {
		tcp := r.TCP
		if tcp != "" && !strings.Contains(tcp, ":") {
			tcp = "127.0.0.1:" + tcp
		}
		svc.Ready = &initproto.Ready{TCP: tcp, Unix: r.Unix, File: r.File, Exec: r.Exec, Log: r.Log,
			Timeout: initproto.Duration(r.Timeout), Interval: initproto.Duration(r.Interval)}
		// kitinit probes from its own root; an image program's paths are
		// in its binds or the image's root (as built: not the sandbox's
		// tmpfs mounts).
		if sb := x.Sandbox; sb != nil && sb.Root != "" {
			svc.Ready.Unix = probePath(sb, svc.Ready.Unix)
			svc.Ready.File = probePath(sb, svc.Ready.File)
		}
	}
	return svc, err
}

// checkCommands makes sure every `command:` names something the image has,
// so that a typo is a build error, not a boot failure.
func (b *builder) checkCommands() error {
	var errs []*spec.Error
	check := func(p spec.Program) {
		if p.Command == "" {
			return
		}
		e, ok := b.files[p.Command]
		if !ok {
			errs = append(errs, &spec.Error{Pos: p.Pos, Msg: fmt.Sprintf("command %q is not in the image; add it under files: or build it with go: or binary:", p.Command)})
		} else if !e.rec.IsRegular() || e.rec.Perm()&0o111 == 0 {
			errs = append(errs, &spec.Error{Pos: p.Pos, Msg: fmt.Sprintf("command %q is in the image but is not an executable file (mode %o)", p.Command, e.rec.Perm())})
		}
	}
	for _, t := range b.spec.Onboot {
		check(t.Program)
	}
	for _, t := range b.spec.Onshut {
		check(t.Program)
	}
	for _, s := range b.spec.Services {
		check(s.Program)
	}
	if len(errs) > 0 {
		return &spec.Errors{List: errs}
	}
	return nil
}

// ids maps the spec's user and group to numbers; names are those of the
// image's own /etc/passwd and /etc/group.
func ids(user, group string) (uint32, uint32, error) {
	users := map[string]uint32{"root": 0, "nobody": 65534}
	groups := map[string]uint32{"root": 0, "nobody": 65534, "nogroup": 65534}
	uid, ok := users[user]
	if !ok {
		n, err := strconv.ParseUint(user, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("unknown user %q", user)
		}
		uid = uint32(n)
	}
	gid := uid
	if group != "" {
		g, ok := groups[group]
		if !ok {
			n, err := strconv.ParseUint(group, 10, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("unknown group %q", group)
			}
			g = uint32(n)
		}
		gid = g
	}
	return uid, gid, nil
}

// imageFiles are the files of an image directory, ready to be written:
// the kernel, initramfs and command line, and the manifest, which lists the
// disk formats once stage has written them (Options.Formats).
type imageFiles struct {
	b        *builder
	kernel   string // host path
	initrd   []byte
	cmdline  []byte
	m        image.Manifest // without disks
	manifest []byte         // m, marshalled
	// cached: the initramfs came from the cache.
	cached bool
}

// digest names the image's content as image.Load will: its manifest
// without disks, and the disk formats asked for, built from it for the
// platform's machine.
func (f *imageFiles) digest() (string, error) {
	if len(f.b.opts.Formats) == 0 {
		return image.Digest(f.manifest), nil
	}
	machine, _, err := f.b.opts.Platform.Machine(f.b.opts.Machine)
	if err != nil {
		return "", err
	}
	return image.DiskDigest(f.manifest, f.b.opts.Formats, machine), nil
}

// imageFiles packs the initramfs (or takes it from the cache) and makes the
// manifest.
func (b *builder) imageFiles() (*imageFiles, error) {
	comp := b.comp
	b.addParents()
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	sort.Strings(names)
	key := b.cacheKey(names, comp.name)
	cacheDir := filepath.Join(b.opts.CacheDir, "initrd")
	cachedInitrd := filepath.Join(cacheDir, key+".img")
	cachedMeta := filepath.Join(cacheDir, key+".json")
	var initrd []byte
	var meta initrdMeta
	cached := false
	if data, err := os.ReadFile(cachedInitrd); err == nil {
		if mb, err := os.ReadFile(cachedMeta); err == nil && json.Unmarshal(mb, &meta) == nil {
			initrd, cached = data, true
		}
	}
	if !cached {
		raw, err := b.pack(names)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := comp.compress(&buf, raw); err != nil {
			return nil, fmt.Errorf("compressing initramfs (%s): %w", comp.name, err)
		}
		initrd = buf.Bytes()
		meta = initrdMeta{Uncompressed: int64(len(raw))}
		mb, _ := json.Marshal(meta)
		if err := os.MkdirAll(cacheDir, 0o755); err == nil {
			// A cache that cannot be written only costs speed. The
			// initramfs first: the metadata says it is complete.
			if atomicfile.Write(cachedInitrd, initrd, 0o644) == nil {
				_ = atomicfile.Write(cachedMeta, mb, 0o644)
			}
		}
	}

	kernelSum, kernelSize, err := hashFile(b.kernel.Image)
	if err != nil {
		return nil, err
	}
	m := image.Manifest{
		Kind:          image.ManifestKind,
		Version:       image.ManifestVersion,
		Name:          b.spec.Name,
		Arch:          b.arch.Name,
		Kernel:        image.Blob{Size: kernelSize, SHA256: kernelSum},
		KernelVersion: b.kernel.Version,
		Initrd: image.Initrd{
			Blob:        image.Blob{Size: int64(len(initrd)), SHA256: sum(initrd)},
			Compression: comp.name, UncompressedSize: meta.Uncompressed,
		},
		Cmdline:  strings.TrimSpace(b.spec.Kernel.Cmdline),
		Platform: b.opts.Platform.Name,
		Network:  image.NetworkNone,
		Modules:  b.mods,
		Guest:    b.guest,
		Images:   b.images,
	}
	if b.network != nil {
		m.Network = image.NetworkAuto
	}
	if b.sshEnabled() {
		m.SSH = b.sshPort()
	}
	for _, s := range b.config.Services {
		m.Services = append(m.Services, s.Name)
	}
	for _, n := range names {
		m.Files = append(m.Files, manifestEntry(b.files[n]))
	}
	mj, err := image.MarshalManifest(m)
	if err != nil {
		return nil, err
	}
	return &imageFiles{
		b:        b,
		kernel:   b.kernel.Image,
		initrd:   initrd,
		cmdline:  []byte(m.Cmdline + "\n"),
		m:        m,
		manifest: mj,
		cached:   cached,
	}, nil
}

// alreadyAt says whether dir already holds this very image (an unchanged
// spec built again), so that nothing need be written: the same manifest,
// the same disks, and the kernel and initramfs it describes.
func (f *imageFiles) alreadyAt(dir string) (*image.Image, bool) {
	if image.CheckReplaceable(dir) != nil {
		return nil, false
	}
	img, err := image.Load(dir)
	if err != nil {
		return nil, false
	}
	if st, err := os.Stat(img.Kernel); err != nil || st.Size() != img.Manifest.Kernel.Size {
		return nil, false
	}
	if initrd, _, err := hashFile(img.Initrd); err != nil || initrd != img.Manifest.Initrd.SHA256 {
		return nil, false
	}
	// The manifest is the same but for the disks, and those are the ones
	// asked for, built for the same machine, there in full.
	disks := img.Manifest.Disks
	base := img.Manifest
	base.Disks = nil
	mj, err := image.MarshalManifest(base)
	if err != nil || !bytes.Equal(mj, f.manifest) || len(disks) != len(f.b.opts.Formats) {
		return nil, false
	}
	for _, name := range f.b.opts.Formats {
		d, ok := disks[name]
		if !ok || (f.b.opts.Machine != "" && d.Machine != f.b.opts.Machine) {
			return nil, false
		}
		if st, err := os.Stat(filepath.Join(dir, d.File)); err != nil || st.Size() != d.Size {
			return nil, false
		}
	}
	return img, true
}

// stage writes the image into the empty directory dir, each file durably,
// then its disks, the manifest last, and makes dir readable to all.
func (f *imageFiles) stage(dir string) error {
	if err := linkOrCopy(f.kernel, filepath.Join(dir, image.KernelFile)); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		data []byte
	}{{image.InitrdFile, f.initrd}, {image.CmdlineFile, f.cmdline}} {
		if err := atomicfile.Write(filepath.Join(dir, w.name), w.data, 0o644); err != nil {
			return err
		}
	}
	manifest := f.manifest
	if len(f.b.opts.Formats) > 0 {
		m := f.m
		var err error
		if m.Disks, err = f.b.writeDisks(dir, m); err != nil {
			return err
		}
		if manifest, err = image.MarshalManifest(m); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, image.ManifestFile), manifest, 0o644); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// writeDisks builds the disk formats asked for into the image directory
// being written. A disk image carries its kernel command line: the
// image's own, wired for the platform's machine (Options.Machine).
func (b *builder) writeDisks(dir string, m image.Manifest) (map[string]image.Disk, error) {
	machine, hw, err := b.opts.Platform.Machine(b.opts.Machine)
	if err != nil {
		return nil, err
	}
	pkgDir := b.opts.PackageDir
	if pkgDir == "" {
		pkgDir = filepath.Join(b.opts.CacheDir, "packages")
	}
	in := &disk.Input{
		Payload: disk.Payload{
			Name: m.Name, Arch: b.arch,
			Kernel: filepath.Join(dir, image.KernelFile), Initrd: filepath.Join(dir, image.InitrdFile),
			Cmdline: hw.Cmdline(m.Cmdline, platform.Wiring{Network: b.network != nil, Disk: true}),
		},
		Loaders: &disk.Loaders{PackageDir: pkgDir, CacheDir: filepath.Join(b.opts.CacheDir, "loaders")},
	}
	disks, err := disk.Build(b.ctx, in, b.opts.Formats, dir)
	if err != nil {
		return nil, fmt.Errorf("disk images: %w", err)
	}
	for name, d := range disks {
		d.Machine = machine
		disks[name] = d
	}
	return disks, nil
}

// addParents adds every missing parent directory explicitly, so that the
// manifest lists exactly what the archive holds.
func (b *builder) addParents() {
	for name := range b.files {
		for d := path.Dir(name); d != "/"; d = path.Dir(d) {
			if _, ok := b.files[d]; ok {
				break
			}
			b.files[d] = &entry{rec: cpio.Dir(d, 0o755), origin: "kitrun (parent directory)"}
		}
	}
}

type initrdMeta struct {
	Uncompressed int64 `json:"uncompressed"`
}

// cacheKey covers everything that decides the initramfs's bytes.
func (b *builder) cacheKey(names []string, compression string) string {
	h := sha256.New()
	fmt.Fprintf(h, "kitrun-initrd-v1\x00%s\x00", compression)
	for _, n := range names {
		e := b.files[n]
		r := e.rec
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00%d\x00%d.%d\x00%s\x00", n, r.Mode, r.UID, r.GID, r.RDevMajor, r.RDevMinor, e.sum)
		if r.IsSymlink() {
			fmt.Fprintf(h, "%s\x00", r.Data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// pack writes the uncompressed newc archive.
func (b *builder) pack(names []string) ([]byte, error) {
	recs := make([]cpio.Record, 0, len(names))
	for _, n := range names {
		e := b.files[n]
		r := e.rec
		if e.src != "" {
			data, err := os.ReadFile(e.src)
			if err != nil {
				return nil, err
			}
			if sum(data) != e.sum {
				return nil, fmt.Errorf("%s changed while the image was being built", e.src)
			}
			r.Data = data
		}
		recs = append(recs, r)
	}
	var buf bytes.Buffer
	if err := cpio.WriteTree(&buf, recs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func manifestEntry(e *entry) image.Entry {
	r := e.rec
	me := image.Entry{Path: r.Name, Mode: fmt.Sprintf("%04o", r.Perm()), UID: int(r.UID), GID: int(r.GID), Origin: e.origin}
	switch r.Type() {
	case cpio.TypeDir:
		me.Type = "dir"
	case cpio.TypeSymlink:
		me.Type, me.Target = "symlink", string(r.Data)
	case cpio.TypeReg:
		me.Type, me.SHA256 = "file", e.sum
		if e.src != "" {
			if st, err := os.Stat(e.src); err == nil {
				me.Size = st.Size()
			}
		} else {
			me.Size = int64(len(r.Data))
		}
	default:
		me.Type = "chardev"
	}
	return me
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// linkOrCopy puts src at dst: a hard link where the file system allows
// (kernels are big and never change in place), else a durable copy.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return atomicfile.WriteFrom(dst, 0o644, func(w io.Writer) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// replaceImageDir moves the finished image directory tmp to dest, replacing
// an image kitrun wrote there (and nothing else: see
// image.CheckReplaceable). A reader of dest sees the old image or the new.
func replaceImageDir(tmp, dest string) error {
	if err := image.CheckReplaceable(dest); err != nil {
		return err
	}
	// An empty directory goes (rmdir fails on any other); an old image is
	// first moved aside, under a temporary name that a sweep removes
	// should this process die before it does.
	old := ""
	if ents, err := os.ReadDir(dest); err == nil && len(ents) == 0 {
		if err := os.Remove(dest); err != nil {
			return fmt.Errorf("replacing the empty directory %s: %w", dest, err)
		}
	} else if err == nil {
		aside, err := atomicfile.TempDir(dest)
		if err != nil {
			return err
		}
		os.Remove(aside)
		if err := os.Rename(dest, aside); err != nil {
			return fmt.Errorf("replacing the image %s: %w", dest, err)
		}
		old = aside
	}
	if err := os.Rename(tmp, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return fmt.Errorf("writing the image %s: %w", dest, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dest)); err != nil {
		return err
	}
	if old == "" {
		return nil
	}
	return removeOldImage(old)
}

// removeOldImage removes a replaced image directory file by file, only the
// files kitrun writes: should anything else have appeared in it since it
// was checked, it stays, and the error says where.
func removeOldImage(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() && image.IsFile(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("the replaced image, moved to %s, holds files kitrun did not write; they are left there: %w", dir, err)
	}
	return nil
}

// resolveNetwork puts the spec's network over the platform's: nil for
// `network: none`; DHCP where neither gives an address (a platform without
// a static layout: clouds, Hyper-V's Default Switch); else the NIC's
// static configuration.
func resolveNetwork(nw spec.Network, p platform.Platform) (*initproto.Network, error) {
	if nw.Mode != spec.NetworkAuto {
		return nil, nil
	}
	if nw.Address == "" && p.Network.Address == "" {
		// A gateway or DNS server of the spec's own would be silently
		// overridden by the lease, or be half a static layout.
		if nw.Gateway != "" || nw.DNS != "" {
			return nil, posErr(nw.Pos, fmt.Errorf("the %s platform has no static network layout, so kitinit asks DHCP for the address, gateway and DNS server; give network.address too for a static layout, or drop network.gateway and network.dns", p.Name))
		}
		return &initproto.Network{Mode: initproto.NetworkDHCP}, nil
	}
	n := &initproto.Network{Mode: initproto.NetworkStatic, Address: nw.Address, Gateway: nw.Gateway, DNS: nw.DNS}
	def := p.Network
	if n.Address == "" {
		n.Address = def.Address
	}
	if n.Gateway == "" {
		n.Gateway = def.Gateway
	}
	if n.DNS == "" {
		n.DNS = def.DNS
	}
	prefix, err := netip.ParsePrefix(n.Address)
	if err != nil {
		return nil, posErr(nw.Pos, fmt.Errorf("network address %q: %v", n.Address, err))
	}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		if err != nil {
			return nil, posErr(nw.Pos, fmt.Errorf("network gateway %q: %v", n.Gateway, err))
		}
		if !prefix.Contains(gw) {
			return nil, posErr(nw.Pos, fmt.Errorf("network address %s does not contain the gateway %s (the %s platform's, unless network.gateway says otherwise); set network.gateway to an address inside %s", n.Address, gw, p.Name, prefix.Masked()))
		}
	}
	return n, nil
}

func posErr(p spec.Pos, err error) error {
	var se *spec.Errors
	if errors.As(err, &se) {
		return err
	}
	return &spec.Errors{List: []*spec.Error{{Pos: p, Msg: err.Error()}}}
}
