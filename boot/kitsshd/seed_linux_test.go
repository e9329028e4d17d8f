package kitsshd

import (
	"os"
	"path/filepath"
	"testing"
)

// Crediting real bytes needs root and changes the host kernel's pool; the
// VM tests cover that. Here: a missing or empty seed is fine, and a seed
// file is used once.
func TestCreditSeedWithoutSeed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "random_seed")
	if n, err := CreditSeed(p); n != 0 || err != nil {
		t.Errorf("missing seed: %d, %v", n, err)
	}
	os.WriteFile(p, nil, 0o600)
	if n, err := CreditSeed(p); n != 0 || err != nil {
		t.Errorf("empty seed: %d, %v", n, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("the seed file is still there: %v", err)
	}
}
