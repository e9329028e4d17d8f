package initproto

import (
	"bytes"
	"errors"
	"testing"
)

func TestSeedDiskRoundTrip(t *testing.T) {
	payload := []byte("070701 an archive")
	img, err := SeedDiskImage(payload)
	if err != nil {
		t.Fatal(err)
	}
	n, err := SeedDiskLength(img[:SeedDiskHeaderSize])
	if err != nil || n != len(payload) {
		t.Fatalf("length %d, %v", n, err)
	}
	got, err := SeedDiskPayload(img[:SeedDiskHeaderSize], img[SeedDiskHeaderSize:SeedDiskHeaderSize+n])
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("payload %q, %v", got, err)
	}
}

func TestSeedDiskRefuses(t *testing.T) {
	img, _ := SeedDiskImage([]byte("070701 an archive"))
	h, p := img[:SeedDiskHeaderSize], img[SeedDiskHeaderSize:]

	// A disk without the magic (a boot disk's MBR) is not a seed.
	if _, err := SeedDiskLength(make([]byte, SeedDiskHeaderSize)); !errors.Is(err, ErrNotSeedDisk) {
		t.Errorf("zeros: %v", err)
	}
	// A corrupt payload is refused.
	bad := bytes.Clone(p)
	bad[3] ^= 1
	if _, err := SeedDiskPayload(h, bad); err == nil {
		t.Error("a corrupt payload was taken")
	}
	// So is one whose header's checksum was damaged.
	badSum := bytes.Clone(h)
	badSum[24] ^= 0x80
	if _, err := SeedDiskPayload(badSum, p); err == nil {
		t.Error("a payload was taken against a damaged checksum")
	}
	// So is a short one.
	if _, err := SeedDiskPayload(h, p[:len(p)-1]); err == nil {
		t.Error("a short payload was taken")
	}
	// An announced length over the limit is refused before reading.
	big := bytes.Clone(h)
	big[16+3] = 1
	if _, err := SeedDiskLength(big); err == nil || errors.Is(err, ErrNotSeedDisk) {
		t.Errorf("16 MiB announced: %v", err)
	}
	if _, err := SeedDiskImage(make([]byte, MaxSeed+1)); err == nil {
		t.Error("a seed over MaxSeed was written")
	}
}
