package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/disk/fat"
	"github.com/kitrun/kitrun/boot/disk/gpt"
	"github.com/kitrun/kitrun/boot/disk/uki"
)

func init() {
	register(&Format{
		Name:     "raw-efi",
		File:     "efi.raw",
		Firmware: EFI,
		Arches:   efiArches(),
		Summary:  "raw GPT disk, FAT32 EFI system partition with a unified kernel image (OVMF, AAVMF, AWS and GCP UEFI, Hyper-V gen 2)",
		Build:    buildRawEFI,
	})
}

// efiBoot is, per arch, systemd's EFI stub in Debian's systemd-boot-efi
// package and the removable-media boot path UEFI firmware starts when it
// has no boot entries (UEFI specification, 3.5.1.1).
var efiBoot = map[string]struct{ stub, bootFile string }{
	"x86_64":  {"usr/lib/systemd/boot/efi/linuxx64.efi.stub", "EFI/BOOT/BOOTX64.EFI"},
	"aarch64": {"usr/lib/systemd/boot/efi/linuxaa64.efi.stub", "EFI/BOOT/BOOTAA64.EFI"},
}

const stubPackage = "systemd-boot-efi"

func efiArches() []string {
	var names []string
	for n := range efiBoot {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// espFree is the free space an ESP keeps past its files: firmware and
// tools that write to the ESP (boot entries, updates) find room, and on a
// sparse image it costs nothing.
const espFree = 1 << 20

// ESP is the content of an EFI system partition that boots a payload: its
// unified kernel image (systemd's stub, the kernel, the initramfs, the
// command line) at the removable-media boot path \EFI\BOOT\BOOT<ARCH>.EFI.
// raw-efi puts it in a GPT partition; an ISO puts it in its El Torito EFI
// boot image:
//
//	esp, err := disk.NewESP(ctx, in)
//	size, err := esp.MinSize(fat.Options{Type: fat.FAT16})
//	res, err := esp.Write(io.NewOffsetWriter(f, off), fat.Options{Type: fat.FAT16})
//
// (res.Size == size). FAT16 makes the smallest image; a disk's ESP should
// be FAT32, the default.
type ESP struct {
	// BootFile is the UKI's path in the FAT, slash-separated.
	BootFile string
	// UKI is the unified kernel image.
	UKI *uki.Image
}

// NewESP plans the ESP of in's payload; it reads the stub from in.Loaders
// and checks the kernel, but writes nothing.
func NewESP(ctx context.Context, in *Input) (*ESP, error) {
	b, ok := efiBoot[in.Arch.Name]
	if !ok {
		return nil, fmt.Errorf("no EFI boot path for %s: kitrun has systemd's EFI stub for %s only", in.Arch.Name, strings.Join(efiArches(), ", "))
	}
	if in.Loaders == nil {
		return nil, errors.New("disk: Input.Loaders is not set")
	}
	stub, err := in.Loaders.File(ctx, stubPackage, in.Arch.Debian, b.stub)
	if err != nil {
		return nil, fmt.Errorf("the EFI boot path needs systemd's EFI stub: %w", err)
	}
	im, err := uki.New(uki.Input{
		Stub:      stub,
		Kernel:    in.Kernel,
		Initrd:    in.Initrd,
		Cmdline:   in.Cmdline,
		OSRelease: osRelease(in.Name),
	})
	if err != nil {
		return nil, err
	}
	return &ESP{BootFile: b.bootFile, UKI: im}, nil
}

// osRelease is the UKI's .osrel: what boot menus show for it.
func osRelease(name string) string {
	if name == "" {
		name = "image"
	}
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == '`' || r == '$' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf("NAME=\"kitrun\"\nID=kitrun\nIMAGE_ID=\"%s\"\nPRETTY_NAME=\"%s (kitrun)\"\n", clean, clean)
}

func (e *ESP) files() []fat.File {
	return []fat.File{{Path: e.BootFile, Size: e.UKI.Size(), Write: e.UKI.Write}}
}

// MinSize is the size of the smallest FAT file system of type o.Type (and
// o.Free bytes free) that holds the ESP: what Write makes when o.Size is 0.
func (e *ESP) MinSize(o fat.Options) (int64, error) {
	return fat.MinSize(e.files(), o)
}

// Write writes the ESP as a FAT file system to w at offsets
// 0..Result.Size-1 (o.Size, or MinSize when that is 0). w must read as
// zeros where nothing is written, as a new file does: free space is not
// written.
func (e *ESP) Write(w io.WriterAt, o fat.Options) (fat.Result, error) {
	return fat.Write(w, e.files(), o)
}

// buildRawEFI writes a GPT disk whose one partition, an ESP aligned at
// 1 MiB, holds the payload's UKI. The disk is a whole number of MiB, the
// ESP as small as FAT32 allows (about 33 MiB) or the UKI plus espFree;
// the file is sparse, so it allocates little more than the UKI.
func buildRawEFI(ctx context.Context, in *Input, _, out string) error {
	esp, err := NewESP(ctx, in)
	if err != nil {
		return err
	}
	minSize, err := esp.MinSize(fat.Options{Free: espFree})
	if err != nil {
		return err
	}
	parts, size := gpt.Layout(minSize)
	p := &parts[0]
	// The ESP takes the whole disk up to the backup table.
	p.Last = gpt.LastUsable(size)
	p.Type, p.Name = gpt.ESP, "EFI system partition"
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	fail := func(err error) error { return outputError("raw-efi", out, size, err) }
	first := int64(p.First) * gpt.SectorSize
	res, err := esp.Write(io.NewOffsetWriter(f, first), fat.Options{
		Size:          int64(p.Last+1)*gpt.SectorSize - first,
		HiddenSectors: uint32(p.First),
	})
	if err != nil {
		return fail(err)
	}
	if err := gpt.Write(f, gpt.Table{Size: size, Seed: res.Digest[:], Partitions: parts}); err != nil {
		return fail(err)
	}
	if err := f.Commit(); err != nil {
		return fail(err)
	}
	return nil
}
