package disk_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// BenchmarkContainers builds each container of the minimal example's
// raw-efi disk (34 MiB, mostly sparse: a GPT and a FAT32 ESP holding the
// unified kernel image), as kitrun does (read, write, fsync, rename).
// MB/s is of the raw disk; out-bytes is the file's size, alloc-bytes what
// it occupies (raw-bytes and raw-alloc-bytes: the raw disk's).
func BenchmarkContainers(b *testing.B) {
	_, in := minimal(b, "x86_64")
	raw := build(b, "raw-efi", in)
	rawSt, err := os.Stat(raw)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range containers {
		b.Run(c.name, func(b *testing.B) {
			f, err := disk.Lookup(c.name)
			if err != nil {
				b.Fatal(err)
			}
			dir := filepath.Dir(raw) // aws.json sits beside its base
			out := filepath.Join(dir, f.File)
			b.SetBytes(rawSt.Size())
			for b.Loop() {
				if err := f.Build(b.Context(), in, raw, out); err != nil {
					b.Fatal(err)
				}
			}
			st, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Size()), "out-bytes")
			b.ReportMetric(float64(rawtest.Allocated(st)), "alloc-bytes")
			b.ReportMetric(float64(rawSt.Size()), "raw-bytes")
			b.ReportMetric(float64(rawtest.Allocated(rawSt)), "raw-alloc-bytes")
		})
	}
}
