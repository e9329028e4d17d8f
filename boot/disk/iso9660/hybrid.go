package iso9660

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The hybrid MBR follows syslinux's isohybrid: the disk has a geometry of
// 64 heads and 32 sectors (1 MiB cylinders), the image is padded to whole
// cylinders, and one bootable partition starts at sector 0 and spans it.
const (
	hybridHeads   = 64
	hybridSectors = 32
	// isohybrid's default partition type (a hidden IFS/HPFS/NTFS type
	// that no operating system claims).
	hybridPartType = 0x17
	efiPartType    = 0xEF
	// isolinux.bin carries this at byte 0x40 when it has the entry point
	// that isohdpfx.bin jumps to.
	isolinuxHybridMagic = 0x7078C0FB
)

// hybridMBR builds the 512-byte MBR of a hybrid volume.
//
// With BIOS boot code: the code, the BIOS boot image's 512-byte sector at
// byte 432 (where isohdpfx.bin reads it), and one bootable partition of
// type 0x17 over the whole image. Without it (an EFI-only image), one
// partition of type 0xEF over the EFI boot image, so that UEFI firmware
// finds the EFI system partition on the disk; isohybrid's whole-image
// partition is left out there because EDK2 rejects an MBR whose partitions
// overlap.
func hybridMBR(h *Hybrid, boot *ElTorito, lay *Layout) ([]byte, error) {
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], lay.DiskID)
	total := lay.Sectors * (SectorSize / 512)
	switch {
	case h.BIOSCode != nil:
		if len(h.BIOSCode) != 432 {
			return nil, fmt.Errorf("iso9660: hybrid MBR boot code is %d bytes; isohdpfx.bin has 432", len(h.BIOSCode))
		}
		if boot == nil || boot.BIOS == "" {
			return nil, errors.New("iso9660: hybrid BIOS boot code needs an El Torito BIOS boot image")
		}
		bios := lay.Extents[boot.BIOS]
		copy(mbr, h.BIOSCode)
		binary.LittleEndian.PutUint64(mbr[432:], uint64(bios.Sector)*(SectorSize/512))
		putPartition(mbr[446:], 0x80, hybridPartType, 0, total)
	case boot != nil && boot.EFI != "":
		efi := lay.Extents[boot.EFI]
		putPartition(mbr[446:], 0, efiPartType, efi.Sector*(SectorSize/512), uint32((efi.Size+511)/512))
	default:
		return nil, errors.New("iso9660: a hybrid image needs BIOS boot code or an El Torito EFI image")
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	return mbr, nil
}

// putPartition writes a 16-byte MBR partition entry, with CHS addresses in
// the hybrid geometry (saturated at 1024 cylinders, as BIOSes expect).
func putPartition(e []byte, status, typ byte, start, count uint32) {
	e[0] = status
	copy(e[1:4], chs(start))
	e[4] = typ
	copy(e[5:8], chs(start+count-1))
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], count)
}

func chs(lba uint32) []byte {
	c := lba / (hybridHeads * hybridSectors)
	hd := lba / hybridSectors % hybridHeads
	s := lba%hybridSectors + 1
	if c > 1023 {
		c, hd, s = 1023, hybridHeads-1, hybridSectors
	}
	return []byte{byte(hd), byte(s) | byte(c>>8)<<6, byte(c)}
}

// isolinuxHybrid says whether a BIOS boot image is an isolinux.bin with the
// entry point isohdpfx.bin jumps to when the image boots as a disk.
func isolinuxHybrid(image []byte) bool {
	return len(image) >= 0x44 && binary.LittleEndian.Uint32(image[0x40:]) == isolinuxHybridMagic
}
