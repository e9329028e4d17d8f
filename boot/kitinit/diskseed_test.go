//go:build linux

package kitinit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
)

// disks makes a /sys/block and a /dev with the given disks' contents.
func disks(t *testing.T, contents map[string][]byte) (sysBlock, dev string) {
	t.Helper()
	root := t.TempDir()
	sysBlock, dev = filepath.Join(root, "sys/block"), filepath.Join(root, "dev")
	os.MkdirAll(sysBlock, 0o755)
	os.MkdirAll(dev, 0o755)
	for name, b := range contents {
		os.Mkdir(filepath.Join(sysBlock, name), 0o755)
		if b != nil {
			os.WriteFile(filepath.Join(dev, name), b, 0o644)
		}
	}
	return sysBlock, dev
}

// TestFindSeedDisk: the disk that holds a seed is found among others
// (a boot disk without the magic, a node not yet readable), and a disk
// that appears late is still found before the deadline.
func TestFindSeedDisk(t *testing.T) {
	seed := []byte("070701 the archive")
	img, err := initproto.SeedDiskImage(seed)
	if err != nil {
		t.Fatal(err)
	}
	img = append(img, make([]byte, 4096)...) // the disk is larger than the seed
	boot := append([]byte{0xeb, 0x63, 0x90}, make([]byte, 8192)...)
	sysBlock, dev := disks(t, map[string][]byte{"sda": boot, "sr0": nil, "vda": img})
	got, err := findSeedDisk(sysBlock, dev, time.Second)
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("found %q, %v", got, err)
	}

	// Late: only the boot disk at first.
	sysBlock, dev = disks(t, map[string][]byte{"sda": boot})
	go func() {
		time.Sleep(200 * time.Millisecond)
		os.WriteFile(filepath.Join(dev, "vdb"), img, 0o644)
		os.Mkdir(filepath.Join(sysBlock, "vdb"), 0o755)
	}()
	if got, err := findSeedDisk(sysBlock, dev, 5*time.Second); err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("late disk: %q, %v", got, err)
	}
}

// TestFindSeedDiskNone: without a seed disk the boot goes on (nil, no
// error) once the deadline has passed.
func TestFindSeedDiskNone(t *testing.T) {
	sysBlock, dev := disks(t, map[string][]byte{"sda": make([]byte, 4096)})
	start := time.Now()
	got, err := findSeedDisk(sysBlock, dev, 300*time.Millisecond)
	if err != nil || got != nil {
		t.Fatalf("%q, %v", got, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("returned after %s", d)
	}
}

// TestFindSeedDiskCorrupt: a disk with the magic whose payload does not
// verify is refused, not unpacked and not passed over.
func TestFindSeedDiskCorrupt(t *testing.T) {
	img, _ := initproto.SeedDiskImage([]byte("070701 the archive"))
	img[initproto.SeedDiskHeaderSize+2] ^= 0xff
	sysBlock, dev := disks(t, map[string][]byte{"sdb": img})
	got, err := findSeedDisk(sysBlock, dev, time.Second)
	if err == nil || got != nil {
		t.Fatalf("a corrupt seed: %q, %v", got, err)
	}
	if bytes.Contains([]byte(err.Error()), []byte("archive")) {
		t.Errorf("the error shows the seed's bytes: %v", err)
	}
}

// TestFindSeedDiskEmpty: the empty seed disk the hyperv backend attaches
// to a boot without per-boot files ends the search in the first pass
// (within 0: one look), as found with nothing in it (non-nil, empty),
// where no disk at all gives nil.
func TestFindSeedDiskEmpty(t *testing.T) {
	img, err := initproto.SeedDiskImage(nil)
	if err != nil {
		t.Fatal(err)
	}
	sysBlock, dev := disks(t, map[string][]byte{"sda": make([]byte, 4096), "sdb": append(img, make([]byte, 4096)...)})
	got, err := findSeedDisk(sysBlock, dev, 0)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("an empty seed disk: %q (nil %v), %v", got, got == nil, err)
	}
}
