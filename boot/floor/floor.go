// Package floor builds the boot-time floor: an initramfs holding only a
// static init that powers the machine off the moment it runs (floorinit).
// Booted with the same kernel, machine and accelerator as an image, its time
// from QEMU exec to QEMU exit is what the VMM, firmware and kernel cost on
// their own — the reference every kitrun boot figure is a ratio to.
package floor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/guestbin"
)

// Build returns the path of the floor initramfs for a, writing it into
// cacheDir when missing. floorinit is the copy embedded in kitrun unless
// checkout (or the checkout guestbin.FindCheckout finds when it is empty)
// holds different sources of it.
func Build(ctx context.Context, a arch.Arch, checkout, cacheDir string) (string, error) {
	bin, err := guestbin.Get(ctx, guestbin.Floorinit, a, guestbin.Options{Checkout: checkout, CacheDir: cacheDir})
	if err != nil {
		return "", err
	}
	out := filepath.Join(cacheDir, "floor", fmt.Sprintf("floor-%s-%.20s.cpio", a.Name, bin.SHA256))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	var buf bytes.Buffer
	// Uncompressed: the floor must not pay for decompression either.
	err = cpio.WriteTree(&buf, []cpio.Record{
		cpio.File("init", bin.Data, 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
	})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	return out, atomicfile.Write(out, buf.Bytes(), 0o644)
}
