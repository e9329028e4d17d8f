//go:build linux

package kitinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
)

// The seed on a disk of its own (initproto.SeedDisk), as the hyperv
// backend attaches it: Hyper-V has no fw_cfg and no metadata service.
//
// Disks appear as their driver probes them (storvsc scans its SCSI
// targets asynchronously), so kitinit looks through the block devices
// until one holds a seed whose checksum verifies, or diskseedWithin has
// passed. The hyperv backend attaches a seed disk to every boot of an
// image that names this source, an empty one when it has no files to
// pass, so the search ends when the disk shows up; diskseedWithin only
// bounds a boot given no disk at all (the image started by hand). A disk that does not start with the magic is skipped; one
// that does but whose payload does not verify is an error, never
// unpacked. As with every seed source, the bytes go nowhere but
// unpackArchive.

// diskseedWithin bounds the search: what a boot given no seed disk
// waits.
const diskseedWithin = 2 * time.Second

// findSeedDisk returns the seed archive from the block devices listed in
// sysBlock (/sys/block) and opened under dev (/dev), nil if none holds
// one before within has passed.
func findSeedDisk(sysBlock, dev string, within time.Duration) ([]byte, error) {
	deadline := time.Now().Add(within)
	skipped := map[string]bool{} // read, and not a seed disk
	for {
		ents, _ := os.ReadDir(sysBlock)
		for _, e := range ents {
			name := e.Name()
			if skipped[name] {
				continue
			}
			data, err := readSeedDisk(filepath.Join(dev, name))
			switch {
			case err == nil:
				return data, nil
			case errors.Is(err, initproto.ErrNotSeedDisk):
				skipped[name] = true
			case errors.Is(err, errSeedUnreadable):
				// Not readable yet (the node is still being created),
				// or never (an empty drive): tried again next round.
			default:
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errSeedUnreadable = errors.New("unreadable")

// readSeedDisk reads and checks the seed on the disk at path.
func readSeedDisk(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errSeedUnreadable
	}
	defer f.Close()
	header := make([]byte, initproto.SeedDiskHeaderSize)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, errSeedUnreadable
	}
	n, err := initproto.SeedDiskLength(header)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(f, payload); err != nil {
		return nil, fmt.Errorf("the seed disk holds fewer than its %d bytes: %w", n, err)
	}
	return initproto.SeedDiskPayload(header, payload)
}
