package image

import (
	"bytes"
	"os"

	"github.com/pierrec/lz4/v4"
)

// InitrdWithSeed writes to path (mode 0600: a seed may hold keys) the
// image's initramfs followed by seed, an uncompressed newc archive, so that
// a direct kernel boot gets the seed's files over the image's: the kernel
// unpacks concatenated archives in order. It only looks for the next one at
// a 4-byte aligned offset, hence the padding. lz4 is the exception: the
// kernel's lz4 reader takes whatever follows an lz4 stream for more lz4
// chunks and fails on a plain archive, so there the seed goes in as a
// second legacy lz4 stream, which it decodes as a continuation of the
// first.
func (i *Image) InitrdWithSeed(seed []byte, path string) error {
	base, err := os.ReadFile(i.Initrd)
	if err != nil {
		return err
	}
	buf := bytes.NewBuffer(base)
	if i.Manifest.Initrd.Compression == "lz4" {
		zw := lz4.NewWriter(buf)
		if err := zw.Apply(lz4.LegacyOption(true)); err != nil {
			return err
		}
		if _, err := zw.Write(seed); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
	} else {
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
		buf.Write(seed)
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}
