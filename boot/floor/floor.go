// Package floor builds the boot-time floor: an initramfs holding only a
// static init that powers the machine off the moment it runs (floorinit).
// Booted with the same kernel, machine and accelerator as an image, its time
// from QEMU exec to QEMU exit is what the VMM, firmware and kernel cost on
// their own — the reference every kitrun boot figure is a ratio to.
package floor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/gobuild"
)

// Build returns the path of the floor initramfs for a, building it into
// cacheDir when missing. srcRoot is the kitrun module root.
func Build(ctx context.Context, a arch.Arch, srcRoot, cacheDir string) (string, error) {
	gb := &gobuild.Builder{CacheDir: filepath.Join(cacheDir, "go", a.GOARCH)}
	bin, err := gb.Build(ctx, filepath.Join(srcRoot, "boot", "floor", "floorinit"), a.GOARCH)
	if err != nil {
		return "", err
	}
	out := bin + ".cpio"
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	// Uncompressed: the floor must not pay for decompression either.
	err = cpio.WriteTree(&buf, []cpio.Record{
		cpio.File("init", data, 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
	})
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, werr := f.Write(buf.Bytes())
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return out, os.Rename(f.Name(), out)
}
