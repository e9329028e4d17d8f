package hyperv

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kitrun/kitrun/boot/disk/vhdx"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// seedDiskSize is the seed disk's virtual size: room for the largest seed
// (initproto.MaxSeed) and above the 3 MiB Hyper-V's own tools take as
// the smallest disk. The VHDX is dynamic, so the file holds only the
// written blocks.
const seedDiskSize = 4 << 20

// seedDisk returns the VHDX of a seed disk (initproto.SeedDisk) holding
// seed: a header kitinit recognises, then the archive.
func seedDisk(ctx context.Context, seed []byte) ([]byte, error) {
	raw, err := initproto.SeedDiskImage(seed)
	if err != nil {
		return nil, fmt.Errorf("hyperv: %w", err)
	}
	raw = append(raw, make([]byte, seedDiskSize-len(raw))...)
	var b bytes.Buffer
	if err := vhdx.Write(ctx, &b, bytes.NewReader(raw), seedDiskSize); err != nil {
		return nil, fmt.Errorf("hyperv: writing the seed disk: %w", err)
	}
	return b.Bytes(), nil
}

// checkSeed refuses a seed the image's disk will not look for: one built
// before kitrun delivered seeds on Hyper-V.
func checkSeed(seed []byte, cmdline string) error {
	if len(seed) == 0 {
		return nil
	}
	if len(seed) > initproto.MaxSeed {
		return fmt.Errorf("hyperv: the per-boot files take %d bytes; a seed disk holds at most %d", len(seed), initproto.MaxSeed)
	}
	if got := initproto.CmdlineSeed(cmdline); got != initproto.SeedDisk {
		return &hypervisor.UnsupportedError{Backend: "hyperv", What: "deliver per-boot files (SSH keys) to this image",
			Hint: fmt.Sprintf("its disk does not read them from a seed disk (kernel command line has %s=%q, want %q): an image built before kitrun delivered seeds on Hyper-V must be rebuilt", initproto.ParamSeed, got, initproto.SeedDisk)}
	}
	return nil
}
