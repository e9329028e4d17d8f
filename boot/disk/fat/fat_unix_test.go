//go:build unix

package fat_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/fat"
)

// TestSparse checks that a minimal FAT32 volume, 33 MiB apparent, costs
// little more than its files on the host.
func TestSparse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fat.img")
	data := content("k", 5<<20)
	res := writeImage(t, p, 0, toFiles(map[string][]byte{"EFI/BOOT/BOOTX64.EFI": data}), fat.Options{})
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	alloc := st.Blocks * 512
	t.Logf("apparent %d bytes, allocated %d bytes, file %d bytes", res.Size, alloc, len(data))
	if res.Size < 65525*512 {
		t.Errorf("FAT32 volume of %d bytes is below the 65525-cluster minimum", res.Size)
	}
	// The file, its FAT chains (2 x 4 bytes per 512-byte cluster) and a
	// few metadata blocks.
	if limit := int64(len(data)) + 2*int64(len(data))/128 + 256<<10; alloc > limit {
		t.Errorf("allocated %d bytes, want at most %d: zero regions were written", alloc, limit)
	}
}
