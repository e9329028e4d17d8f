package kitsshd

import (
	"errors"
	"os"

	"github.com/kitrun/kitrun/boot/entropy"
)

// CreditSeed feeds the seed file at path to the kernel's random pool,
// crediting it as entropy (RNDADDENTROPY; needs CAP_SYS_ADMIN), and removes
// the file: a seed is used once.
//
// Why: SSH's key exchange reads crypto/rand, and getrandom(2) blocks until
// the kernel's CRNG is initialised. A guest without a hardware RNG (TCG's
// CPU models have no RDRAND, the machines no virtio-rng) gets there about
// a second after userspace starts, and the first connection would wait for
// it. The seed comes from the host's CSPRNG over the same private channel
// as the host key, so it is as trustworthy as that key; the kernel mixes it
// with everything else it has. A missing file is not an error (0 bytes).
func CreditSeed(path string) (int, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	os.Remove(path)
	if len(seed) == 0 {
		return 0, nil
	}
	if err := entropy.Credit(seed); err != nil {
		return 0, err
	}
	return len(seed), nil
}
