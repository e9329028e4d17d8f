// Package image owns the on-disk form of an assembled image: a directory
// holding the kernel, the compressed initramfs, the kernel command line and a
// JSON manifest that accounts for every byte in the initramfs, and the disk
// images made from them. It also says which directories are images kitrun
// wrote (see CheckReplaceable), so that a build replaces nothing else.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/kitrun/kitrun/boot/arch"
)

// File names inside an image directory.
const (
	KernelFile   = "kernel"
	InitrdFile   = "initrd.img"
	CmdlineFile  = "cmdline"
	ManifestFile = "manifest.json"
)

// FormatDirect names the image directory's own output, booted directly by
// a hypervisor that loads the kernel and initramfs itself.
const FormatDirect = "kernel+initrd"

// ManifestVersion is the schema version of manifest.json.
const ManifestVersion = 1

// ManifestKind marks a manifest.json as kitrun's (its "kind" field), to
// tell it from the many other manifest.json files a directory may hold.
const ManifestKind = "kitrun-image"

// Manifest describes an image. It holds no timestamps or host paths that
// vary between builds, so identical inputs give an identical manifest.
type Manifest struct {
	// Kind is ManifestKind. Images built before it existed have none.
	Kind    string `json:"kind,omitempty"`
	Version int    `json:"version"`
	Name    string `json:"name"`
	Arch    string `json:"arch"`
	Kernel  Blob   `json:"kernel"`
	// KernelVersion is the kernel release (uname -r of the guest).
	KernelVersion string `json:"kernel_version"`
	Initrd        Initrd `json:"initrd"`
	Cmdline       string `json:"cmdline"`
	// Platform names the platform (boot/platform) the image was built
	// for: the backend whose devices and network it expects.
	Platform string `json:"platform"`
	// Network is "none" or "auto" (the platform's network).
	Network string `json:"network"`
	// SSH is the guest port of kitinit's SSH server, 0 when off.
	SSH      int      `json:"ssh,omitempty"`
	Services []string `json:"services,omitempty"`
	Modules  []string `json:"modules,omitempty"`
	// Guest lists kitrun's own programs in the image and where each came
	// from.
	Guest []GuestProgram `json:"guest,omitempty"`
	// Images are the OCI images of image programs (boot/ociimage).
	Images []OCIImage `json:"images,omitempty"`
	Files  []Entry    `json:"files"`
	// Disks are the disk images built from the image (boot/disk), by
	// format name.
	Disks map[string]Disk `json:"disks,omitempty"`
}

// OCIImage is an image program's OCI image, as pulled for the image's arch.
type OCIImage struct {
	Program  string `json:"program"` // "services/NAME", "onboot/NAME", "onshutdown/NAME"
	Source   string `json:"source"`
	Digest   string `json:"digest"`          // the manifest digest of the image used
	Index    string `json:"index,omitempty"` // the multi-arch index it came from
	Platform string `json:"platform"`
	Root     string `json:"root"` // its unpacked root in the initramfs
	// Compressed is the size of its layer blobs, Bytes that of the file
	// contents of its root.
	Compressed int64 `json:"compressed"`
	Bytes      int64 `json:"bytes"`
}

// GuestProgram is one of kitrun's own programs in the image (kitinit,
// kitsshd).
type GuestProgram struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// From is "embedded" (the copy shipped inside kitrun) or "source"
	// (built from a kitrun checkout whose sources of it differ from the
	// embedded copy's; see boot/guestbin).
	From string `json:"from"`
}

// Disk is a disk image in the image directory.
type Disk struct {
	File string `json:"file"`
	Blob
	// Allocated is the bytes it occupies on the disk it was written to
	// (sparse files occupy less than their size).
	Allocated int64 `json:"allocated,omitempty"`
	// Cmdline is the kernel command line the disk image carries.
	Cmdline string `json:"cmdline,omitempty"`
	// Machine is the machine type whose hardware that command line wires.
	Machine string `json:"machine,omitempty"`
}

// Blob is a file of the image directory.
type Blob struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Initrd is the initramfs: compressed on disk, its content listed in Files.
type Initrd struct {
	Blob
	Compression      string `json:"compression"`
	UncompressedSize int64  `json:"uncompressed_size"`
}

// Entry is one file in the initramfs and what put it there.
type Entry struct {
	Path   string `json:"path"`
	Type   string `json:"type"` // file, dir, symlink, chardev
	Mode   string `json:"mode"` // octal permission bits
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"` // symlink target
	// Origin says what put the entry there: "kitinit", "kernel module
	// virtio_net", "service web", "onboot task prepare", "files[2]",
	// "shared library of service web", "kitrun" (skeleton).
	Origin string `json:"origin"`
}

// Image is an image directory, loaded.
type Image struct {
	Dir string
	// Digest identifies the image's content: the SHA-256 of its manifest,
	// which holds the digests of the kernel and the initramfs and the
	// command line (see Digest).
	Digest   string
	Kernel   string
	Initrd   string
	Cmdline  string
	Arch     arch.Arch
	Manifest Manifest
}

// Load reads the image in dir.
func Load(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a kitrun image (no %s); build one with `kitrun build SPEC -o DIR`", dir, ManifestFile)
		}
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil || (m.Kind != "" && m.Kind != ManifestKind) {
		if err == nil {
			err = fmt.Errorf("kind %q, not %q", m.Kind, ManifestKind)
		}
		return nil, fmt.Errorf("%s: corrupt manifest: %v", filepath.Join(dir, ManifestFile), err)
	}
	digest, err := contentDigest(b, m)
	if err != nil {
		return nil, fmt.Errorf("%s: corrupt manifest: %v", filepath.Join(dir, ManifestFile), err)
	}
	if m.Network == "user" { // kitrun before platforms: QEMU's user networking
		m.Network = NetworkAuto
	}
	if m.Platform == "" {
		m.Platform = "qemu"
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("%s: manifest version %d, this kitrun reads %d", dir, m.Version, ManifestVersion)
	}
	a, err := arch.Lookup(m.Arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	img := &Image{
		Dir:      dir,
		Digest:   digest,
		Kernel:   filepath.Join(dir, KernelFile),
		Initrd:   filepath.Join(dir, InitrdFile),
		Cmdline:  m.Cmdline,
		Arch:     a,
		Manifest: m,
	}
	for _, p := range []string{img.Kernel, img.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("image %s is incomplete: %v", dir, err)
		}
	}
	return img, nil
}

// Network modes of an image.
const (
	NetworkNone = "none"
	NetworkAuto = "auto"
)

// Disk returns the path of the image's disk in format, or an error saying
// how to build it.
func (i *Image) Disk(format string) (string, error) {
	d, ok := i.Manifest.Disks[format]
	if !ok {
		return "", fmt.Errorf("image %s has no %s disk; build it with `kitrun build --format %s`", i.Manifest.Name, format, format)
	}
	p := filepath.Join(i.Dir, d.File)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("image %s is incomplete: %v", i.Dir, err)
	}
	return p, nil
}

// Networked says whether the guest has a NIC.
func (i *Image) Networked() bool { return i.Manifest.Network == NetworkAuto }

// Exists reports whether dir holds an image.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestFile))
	return err == nil
}

// Digest is the content digest of the image whose manifest.json holds
// manifest and which has no disk images: lowercase hex SHA-256.
func Digest(manifest []byte) string {
	h := sha256.Sum256(manifest)
	return hex.EncodeToString(h[:])
}

// DiskDigest is the content digest of an image with disk images: base is
// its manifest.json without disks, formats the disk formats built from it
// and machine the machine type their command line wires. A builder knows
// all three before the disks exist, so the digest can name an image (in
// the image cache, say) before it is written; Load derives the same value
// from the finished manifest.
func DiskDigest(base []byte, formats []string, machine string) string {
	formats = slices.Clone(formats)
	sort.Strings(formats)
	return Digest(fmt.Appendf(slices.Clone(base), "disks\x00%s\x00%s", strings.Join(formats, ","), machine))
}

// contentDigest is the digest of the image whose manifest.json holds raw
// (m, decoded): Digest without disks, DiskDigest with them.
func contentDigest(raw []byte, m Manifest) (string, error) {
	if len(m.Disks) == 0 {
		return Digest(raw), nil
	}
	formats := make([]string, 0, len(m.Disks))
	machine := ""
	for name, d := range m.Disks {
		formats = append(formats, name)
		if machine != "" && d.Machine != machine {
			return "", fmt.Errorf("disks built for two machines, %s and %s", machine, d.Machine)
		}
		machine = d.Machine
	}
	m.Disks = nil
	base, err := MarshalManifest(m)
	if err != nil {
		return "", err
	}
	return DiskDigest(base, formats, machine), nil
}

// MarshalManifest is manifest.json's bytes for m: indented JSON and a
// final newline, the one form every writer of a manifest uses, so that
// digests over it agree.
func MarshalManifest(m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
