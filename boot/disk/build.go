package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/kitrun/kitrun/boot/image"
)

// Build writes each of formats for in into dir (under Format.File), the
// formats they are made from first, and describes every file written.
// Unknown formats, and formats in's arch cannot boot, are refused before
// anything is written.
func Build(ctx context.Context, in *Input, formats []string, dir string) (map[string]image.Disk, error) {
	var order []*Format
	var add func(name string, depth int) error
	add = func(name string, depth int) error {
		f, err := Lookup(name)
		if err != nil {
			return err
		}
		if err := f.For(in.Arch); err != nil {
			return err
		}
		if slices.Contains(order, f) {
			return nil
		}
		if f.Base != "" {
			if depth > 4 {
				return fmt.Errorf("disk format %s: its bases go round in a circle", name)
			}
			if err := add(f.Base, depth+1); err != nil {
				return fmt.Errorf("%s is made from %s: %w", f.Name, f.Base, err)
			}
		}
		order = append(order, f)
		return nil
	}
	for _, name := range formats {
		if err := add(name, 0); err != nil {
			return nil, err
		}
	}
	out := map[string]image.Disk{}
	for _, f := range order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		base := ""
		if f.Base != "" {
			base = filepath.Join(dir, out[f.Base].File)
		}
		p := filepath.Join(dir, f.File)
		if err := f.Build(ctx, in, base, p); err != nil {
			return nil, err
		}
		d, err := describe(p)
		if err != nil {
			return nil, err
		}
		d.File, d.Cmdline = f.File, in.Cmdline
		out[f.Name] = d
	}
	return out, nil
}

// describe sizes and hashes a file (holes read as zeros, as they hash).
func describe(p string) (image.Disk, error) {
	f, err := os.Open(p)
	if err != nil {
		return image.Disk{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return image.Disk{}, err
	}
	d := image.Disk{Blob: image.Blob{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}}
	if st, err := f.Stat(); err == nil {
		d.Allocated = Allocated(st)
	}
	return d, nil
}
