package disk_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/disktest"
)

// checkEFIImage validates an iso-efi image: one El Torito EFI entry, an
// MBR with one EFI system partition over it, and a FAT that fsck.vfat and
// mtools accept, holding the UKI at the removable-media path.
func checkEFIImage(t *testing.T, p, bootFile string) {
	t.Helper()
	d := tool(t, "isoinfo", "-d", "-i", p)
	mustMatch(t, "isoinfo -d", d, `Volume id: MINIMAL\n`)
	mustMatch(t, "isoinfo -d", d, `El Torito VD version 1 found`)
	r := tool(t, "xorriso", "-indev", p, "-report_el_torito", "plain", "-report_system_area", "plain")
	mustMatch(t, "xorriso", r, `El Torito boot img\s*:\s*1\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+\d+\s+\d+\n`)
	mustMatch(t, "xorriso", r, `El Torito img path\s*:\s*1\s+/EFI.IMG\n`)
	if strings.Contains(r, "BIOS") {
		t.Errorf("iso-efi has a BIOS entry:\n%s", r)
	}
	parts := tool(t, "partx", "-g", "-P", "-o", "NR,START,SECTORS,TYPE", p)
	var nr, start, sectors int
	var typ string
	if _, err := fmt.Sscanf(strings.TrimSpace(parts), `NR="%d" START="%d" SECTORS="%d" TYPE="%4s"`, &nr, &start, &sectors, &typ); err != nil || nr != 1 || typ != "0xef" {
		t.Fatalf("partx: %q (%v), want one partition of type 0xef", parts, err)
	}
	esp := filepath.Join(t.TempDir(), "esp")
	tool(t, "dd", "if="+p, "of="+esp, "bs=512", fmt.Sprintf("skip=%d", start), fmt.Sprintf("count=%d", sectors), "status=none")
	tool(t, "fsck.vfat", "-n", esp)
	dir := tool(t, "mdir", "-i", esp, "-b", "::/EFI/BOOT")
	if !strings.Contains(dir, bootFile) {
		t.Errorf("ESP lacks %s: %s", bootFile, dir)
	}
}

// TestISOEFI builds iso-efi of the minimal example for x86_64 and aarch64,
// validates it and boots it as a CD-ROM under OVMF and AAVMF, and as a
// disk under OVMF.
func TestISOEFI(t *testing.T) {
	for _, c := range []struct{ arch, boot string }{{"x86_64", "BOOTX64.EFI"}, {"aarch64", "BOOTAA64.EFI"}} {
		t.Run(c.arch, func(t *testing.T) {
			img, in := minimal(t, c.arch)
			iso := build(t, "iso-efi", in)
			checkEFIImage(t, iso, c.boot)
			if again := build(t, "iso-efi", in); string(read(t, iso)) != string(read(t, again)) {
				t.Error("two builds of iso-efi differ")
			}
			if testing.Short() {
				return
			}
			r := disktest.Run(t, disktest.Boot{Arch: in.Arch, Firmware: "efi", Path: iso, Media: disktest.CDROM})
			t.Logf("as CD-ROM: all-ready after %s, %d events", r.Took, len(r.Events))
			checkEvents(t, img, r)
			if c.arch == "x86_64" {
				// Hybrid: the same file as a disk, through its MBR's EFI
				// system partition (once is enough: the layout does not
				// depend on the arch).
				r := disktest.Run(t, disktest.Boot{Arch: in.Arch, Firmware: "efi", Path: iso, Media: disktest.Disk})
				t.Logf("as disk: all-ready after %s, %d events", r.Took, len(r.Events))
				checkEvents(t, img, r)
			}
		})
	}
}
