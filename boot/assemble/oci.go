package assemble

import (
	"context"

	"archive/tar"
	"fmt"
	"github.com/kitrun/kitrun/boot/kernel"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/ociimage"
	"github.com/kitrun/kitrun/boot/spec"
)

// ContainersDir holds the unpacked root of each image program:
// ContainersDir/<kind>/<name>/rootfs, kind "services", "onboot" or
// "onshutdown" (LinuxKit's layout). kitinit bind-mounts ContainersDir/
// <kind>/<name> onto itself so that pivot_root, which refuses the
// initramfs's own root, has a mount to pivot from.
const ContainersDir = "/containers"

// platformOf is the OCI platform of the target arch.
func (b *builder) platformOf() ociimage.Platform {
	p := ociimage.Platform{OS: "linux", Architecture: b.arch.GOARCH}
	if b.arch.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// imageProgram pulls p's image, puts its flattened root under
// ContainersDir/kind/name/rootfs and says how to run its entrypoint there.
func (b *builder) imageProgram(p spec.Program, kind, name, origin string) (initproto.Exec, error) {
	var x initproto.Exec
	img, err := ociimage.Pull(b.ctx, *p.Image, b.platformOf(), ociimage.Options{CacheDir: b.opts.CacheDir, Offline: b.opts.Offline})
	if err != nil {
		return x, posErr(p.ImagePos, err)
	}
	root := path.Join(ContainersDir, kind, name, "rootfs")
	files := map[string]ociimage.File{}
	for _, f := range img.Files {
		files[f.Path] = f
		rec, ok := imageRecord(root, f)
		if !ok {
			return x, posErr(p.ImagePos, fmt.Errorf("image %s: %s has a file type kitrun cannot put in an initramfs (%q)", p.Image, f.Path, f.Type))
		}
		e := &entry{rec: rec, origin: origin + " (" + img.Digest + ")"}
		if rec.IsRegular() {
			e.sum = sum(f.Data)
		}
		b.put(e)
	}
	// Mount points kitinit needs in the root, and bind targets: a
	// read-only root cannot grow them at run time.
	need := []string{"/proc", "/dev", "/tmp", "/sys", "/etc"}
	if p.Sandbox != nil {
		for _, bd := range p.Sandbox.Binds {
			need = append(need, bd.Target)
		}
	}
	for _, d := range need {
		if f, ok := files[d]; ok && f.Type != tar.TypeDir {
			return x, posErr(p.ImagePos, fmt.Errorf("image %s: %s is not a directory in the image; kitinit mounts on it", p.Image, d))
		}
		if _, ok := b.files[root+d]; !ok {
			mode := uint32(0o755)
			if d == "/tmp" {
				mode = 0o1777
			}
			b.put(&entry{rec: cpio.Dir(root+d, mode), origin: "mount point of " + origin})
		}
	}

	cfg := img.Config
	argv := slices.Clone(cfg.Entrypoint)
	if p.Args != nil {
		argv = append(argv, p.Args...)
	} else {
		argv = append(argv, cfg.Cmd...)
	}
	if len(argv) == 0 {
		return x, posErr(p.ImagePos, fmt.Errorf("image %s has neither an entrypoint nor a cmd; give args: with the program to run", p.Image))
	}
	env := map[string]string{}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range p.Env {
		env[k] = v
	}
	exe, err := lookInImage(files, argv[0], env["PATH"])
	if err != nil {
		return x, posErr(p.ImagePos, fmt.Errorf("image %s: %w", p.Image, err))
	}
	x.Path, x.Args, x.Env = exe, argv[1:], env
	x.Dir = cmpOr(p.Dir, cfg.WorkingDir, "/")
	user, group := p.User, p.Group
	if user == "" {
		user, group = cfg.User, ""
		if u, g, ok := strings.Cut(user, ":"); ok {
			user, group = u, g
		}
	}
	x.UID, x.GID, err = imageIDs(files, cmpOr(user, "root"), group)
	if err != nil {
		return x, posErr(p.ImagePos, fmt.Errorf("image %s: %w", p.Image, err))
	}
	b.images = append(b.images, image.OCIImage{
		Program: kind + "/" + name, Source: p.Image.String(), Digest: img.Digest,
		Index: img.IndexDigest, Platform: img.Platform.String(), Root: root,
		Compressed: img.Compressed, Bytes: img.Bytes,
	})
	x.Sandbox = sandboxConfig(p.Sandbox, root)
	return x, nil
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// imageRecord is the initramfs record of an image file under root, with
// the image's ownership and modes (setuid bits included) and the
// assembler's fixed mtime.
func imageRecord(root string, f ociimage.File) (cpio.Record, bool) {
	var r cpio.Record
	name := root + f.Path
	perm := uint32(f.Mode) & cpio.PermMask
	switch f.Type {
	case tar.TypeReg:
		r = cpio.File(name, f.Data, perm)
	case tar.TypeDir:
		r = cpio.Dir(name, perm)
	case tar.TypeSymlink:
		r = cpio.Symlink(name, f.Linkname)
	case tar.TypeChar:
		r = cpio.CharDev(name, perm, uint32(f.Major), uint32(f.Minor))
	case tar.TypeBlock:
		r = cpio.Record{Name: name, Mode: cpio.TypeBlock | perm, RDevMajor: uint32(f.Major), RDevMinor: uint32(f.Minor)}
	case tar.TypeFifo:
		r = cpio.Record{Name: name, Mode: cpio.TypeFifo | perm}
	default:
		return r, false
	}
	r.UID, r.GID = uint32(f.UID), uint32(f.GID)
	return r, true
}

// lookInImage resolves the program to run inside the image (a bare name
// through the image's PATH), following symlinks within the image.
func lookInImage(files map[string]ociimage.File, name, pathEnv string) (string, error) {
	cands := []string{name}
	if !strings.Contains(name, "/") {
		cands = nil
		for _, d := range strings.Split(cmpOr(pathEnv, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ":") {
			cands = append(cands, path.Join(d, name))
		}
	}
	for _, c := range cands {
		if !path.IsAbs(c) {
			continue
		}
		if f, ok := resolveInImage(files, c); ok && f.Type == tar.TypeReg && f.Mode&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("the program to run, %q, is not an executable file of the image (looked at %s)", name, strings.Join(cands, ", "))
}

func resolveInImage(files map[string]ociimage.File, p string) (ociimage.File, bool) {
	for range 40 {
		f, ok := files[path.Clean(p)]
		if !ok || f.Type != tar.TypeSymlink {
			return f, ok
		}
		if path.IsAbs(f.Linkname) {
			p = f.Linkname
		} else {
			p = path.Join(path.Dir(p), f.Linkname)
		}
	}
	return ociimage.File{}, false
}

// imageIDs maps a user and group (names from the image's own /etc/passwd
// and /etc/group, or numbers) to ids; group "" is the user's primary group.
func imageIDs(files map[string]ociimage.File, user, group string) (uint32, uint32, error) {
	passwd := colonFile(files["/etc/passwd"].Data)
	groups := colonFile(files["/etc/group"].Data)
	uid, gid := -1, -1
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		uid = int(n)
	} else if e, ok := passwd[user]; ok && len(e) > 3 {
		uid, _ = strconv.Atoi(e[2])
		gid, _ = strconv.Atoi(e[3])
	} else if id, ok := map[string]int{"root": 0, "nobody": 65534}[user]; ok {
		uid = id
	} else {
		return 0, 0, fmt.Errorf("user %q is not in the image's /etc/passwd; give user: a number", user)
	}
	if group != "" {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			gid = int(n)
		} else if e, ok := groups[group]; ok && len(e) > 2 {
			gid, _ = strconv.Atoi(e[2])
		} else if id, ok := map[string]int{"root": 0, "nobody": 65534, "nogroup": 65534}[group]; ok {
			gid = id
		} else {
			return 0, 0, fmt.Errorf("group %q is not in the image's /etc/group; give group: a number", group)
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uint32(uid), uint32(gid), nil
}

// colonFile reads /etc/passwd-style lines by their first field.
func colonFile(data []byte) map[string][]string {
	m := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] != "" {
			m[f[0]] = f
		}
	}
	return m
}

// sandboxConfig is kitinit's form of a spec sandbox; root is the image
// root ("" for programs that share the image's root).
func sandboxConfig(sb *spec.Sandbox, root string) *initproto.Sandbox {
	if sb == nil {
		return nil
	}
	out := &initproto.Sandbox{
		Root: root, Caps: []int{}, Readonly: sb.Readonly, NewNet: sb.Net == spec.NetNew,
		Unconfined: sb.Seccomp == spec.SeccompUnconfined,
		MemoryMax:  int64(sb.MemoryMiB) << 20, CPUMax: sb.CPUMilli,
	}
	for _, c := range sb.Capabilities {
		out.Caps = append(out.Caps, initproto.Capabilities[c])
	}
	sort.Ints(out.Caps)
	for _, bd := range sb.Binds {
		out.Binds = append(out.Binds, initproto.Bind{Source: bd.Source, Target: bd.Target, Writable: bd.Writable})
	}
	return out
}

// Contents is what an image built from a spec holds, found without
// writing the image (`kitrun audit` reads it).
type Contents struct {
	Arch   string
	Config initproto.Config // kitinit's configuration: services, tasks, sandboxes
	Kernel *kernel.Kernel
	Files  []image.Entry // every initramfs entry, by path
	Images []image.OCIImage
}

// Inspect collects everything s's image would hold, as Build would, and
// describes it.
func Inspect(ctx context.Context, s *spec.Spec, opts Options) (*Contents, error) {
	b, err := prepare(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	b.addParents()
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	sort.Strings(names)
	c := &Contents{Arch: b.arch.Name, Config: b.config, Kernel: b.kernel, Images: b.images}
	for _, n := range names {
		c.Files = append(c.Files, manifestEntry(b.files[n]))
	}
	return c, nil
}

// probePath is where kitinit finds a path of a sandboxed image program:
// under the source of the bind that holds it, or under the image root.
func probePath(sb *initproto.Sandbox, p string) string {
	if p == "" {
		return ""
	}
	for i := len(sb.Binds) - 1; i >= 0; i-- { // a later bind covers an earlier one
		b := sb.Binds[i]
		if p == b.Target {
			return b.Source
		}
		if rest, ok := strings.CutPrefix(p, b.Target+"/"); ok {
			return path.Join(b.Source, rest)
		}
	}
	return sb.Root + p
}
