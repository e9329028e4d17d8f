package disk

import (
	"context"
	"fmt"
	"io"

	"github.com/kitrun/kitrun/boot/disk/fat"
	"github.com/kitrun/kitrun/boot/disk/iso9660"
)

func init() {
	register(&Format{
		Name:     "iso-efi",
		File:     "efi.iso",
		Firmware: EFI,
		Arches:   efiArches(),
		Summary:  "hybrid ISO 9660, El Torito EFI image holding a unified kernel image (the same file boots as a disk): QEMU -cdrom under OVMF/AAVMF, Hyper-V gen 2 DVD",
		Build:    buildISOEFI,
	})
}

// isoESPPath is the El Torito EFI boot image in the ISO 9660 tree: a FAT
// file system (an EFI system partition) holding the payload's ESP.
const isoESPPath = "EFI.IMG"

// buildISOEFI writes an ISO whose El Torito catalog has one EFI entry and
// whose MBR has one EFI system partition over that same FAT image, so
// that UEFI firmware boots it from a CD drive and from a disk alike. The
// FAT is written in place inside the ISO, the UKI in place inside the FAT:
// kernel and initrd are read once.
func buildISOEFI(ctx context.Context, in *Input, _, out string) error {
	esp, err := NewESP(ctx, in)
	if err != nil {
		return err
	}
	// FAT16: UEFI reads it on removable media, and FAT32's minimum of
	// 65525 clusters would make a small payload's image larger than it.
	opts := fat.Options{Type: fat.FAT16, Label: "EFIBOOT"}
	size, err := esp.MinSize(opts)
	if err != nil {
		return err
	}
	img := &iso9660.Image{
		VolumeID: volumeID(in.Name),
		Files: []iso9660.File{{Path: isoESPPath, Size: size, Write: func(w io.WriterAt) error {
			res, err := esp.Write(w, opts)
			if err == nil && res.Size != size {
				err = fmt.Errorf("the ESP is %d bytes, planned %d", res.Size, size)
			}
			return err
		}}},
		Boot:   &iso9660.ElTorito{Catalog: "BOOT.CAT", EFI: isoESPPath},
		Hybrid: &iso9660.Hybrid{},
	}
	return writeISO(ctx, "iso-efi", out, img)
}
