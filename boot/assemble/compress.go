package assemble

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// DefaultCompression is the initramfs compression kitrun uses unless told
// otherwise. See README ("Why zstd") for the measurements behind it.
const DefaultCompression = "zstd"

// compressor is one of the formats the Debian kernels decompress
// (CONFIG_RD_GZIP, _XZ, _LZ4, _ZSTD), each configured for determinism:
// one encoder thread, no timestamps or names in headers.
type compressor struct {
	name     string
	compress func(w io.Writer, data []byte) error
}

var compressors = map[string]compressor{
	"none": {"none", func(w io.Writer, data []byte) error {
		_, err := w.Write(data)
		return err
	}},
	"gzip": {"gzip", func(w io.Writer, data []byte) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		return zw.Close()
	}},
	"zstd": {"zstd", func(w io.Writer, data []byte) error {
		// The kernel's zstd decoder bounds the window it accepts; 8 MiB
		// fits it and costs little ratio on a few-MiB archive.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20))
		if err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		return zw.Close()
	}},
	"xz": {"xz", func(w io.Writer, data []byte) error {
		// The kernel's xz decoder checks CRC32 only, not xz's default CRC64.
		zw, err := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 8 << 20}.NewWriter(w)
		if err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		return zw.Close()
	}},
	"lz4": {"lz4", func(w io.Writer, data []byte) error {
		// The kernel reads only lz4's legacy frame format (lz4 -l).
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.LegacyOption(true), lz4.CompressionLevelOption(lz4.Level9), lz4.ConcurrencyOption(1)); err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		return zw.Close()
	}},
}

// Compressions lists the valid compression names.
func Compressions() []string {
	var names []string
	for n := range compressors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookupCompressor(name string) (compressor, error) {
	c, ok := compressors[name]
	if !ok {
		return compressor{}, fmt.Errorf("unknown compression %q; valid: %s", name, strings.Join(Compressions(), ", "))
	}
	return c, nil
}
