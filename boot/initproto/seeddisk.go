package initproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The seed disk (SeedDisk) starts with one 512-byte sector: the magic,
// the payload's length (64-bit little-endian) and its CRC-32C (32-bit
// little-endian), then zeros; the payload (a newc archive) follows at
// SeedDiskHeaderSize. The checksum is what makes a disk a seed: a random
// disk (the boot disk, a data disk) that happened to start with the magic
// is still refused, and so is a seed cut short or damaged. It guards
// against accidents, not an adversary: whoever attaches the guest's disks
// controls the guest anyway. (A CRC rather than SHA-256: crypto/sha256
// brings Go's FIPS 140 module into kitinit, about 170 KB in every image.)
const (
	SeedDiskMagic      = "KITRUN-SEED-V2\x00\x00"
	SeedDiskHeaderSize = 512
)

// ErrNotSeedDisk: the disk does not start with SeedDiskMagic.
var ErrNotSeedDisk = errors.New("not a kitrun seed disk")

// SeedDiskImage returns the seed disk's bytes: header, then payload.
func SeedDiskImage(payload []byte) ([]byte, error) {
	if len(payload) > MaxSeed {
		return nil, fmt.Errorf("the per-boot files take %d bytes; a seed disk holds at most %d", len(payload), MaxSeed)
	}
	b := make([]byte, SeedDiskHeaderSize, SeedDiskHeaderSize+len(payload))
	copy(b, SeedDiskMagic)
	binary.LittleEndian.PutUint64(b[16:], uint64(len(payload)))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(payload, castagnoli))
	return append(b, payload...), nil
}

// SeedDiskLength checks a seed disk's header (its first
// SeedDiskHeaderSize bytes) and returns the payload's length:
// ErrNotSeedDisk without the magic.
func SeedDiskLength(header []byte) (int, error) {
	if len(header) < SeedDiskHeaderSize || !bytes.HasPrefix(header, []byte(SeedDiskMagic)) {
		return 0, ErrNotSeedDisk
	}
	n := binary.LittleEndian.Uint64(header[16:])
	if n > MaxSeed {
		return 0, fmt.Errorf("the seed disk announces %d bytes; at most %d", n, MaxSeed)
	}
	return int(n), nil
}

// SeedDiskPayload checks payload (the SeedDiskLength bytes after the
// header) against the header's CRC-32C.
func SeedDiskPayload(header, payload []byte) ([]byte, error) {
	n, err := SeedDiskLength(header)
	if err != nil {
		return nil, err
	}
	if len(payload) != n {
		return nil, fmt.Errorf("the seed disk holds %d of its %d bytes", len(payload), n)
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(header[24:]) {
		return nil, errors.New("the seed disk's payload does not match its CRC-32C")
	}
	return payload, nil
}
