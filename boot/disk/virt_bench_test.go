package disk_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// benchRaw is shaped like a raw-efi disk of the minimal example: 40 MiB,
// a GPT, 1 MiB of file-system metadata (compressible), 14 MiB of kernel
// and initramfs (already compressed: random here), the rest zeros.
func benchRaw(b *testing.B) string {
	b.Helper()
	rawtest.RequireTool(b, "sgdisk")
	p := filepath.Join(b.TempDir(), "bench.raw")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(40 * rawtest.MiB); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "-o", "-n", "1:2048:0", "-t", "1:ef00", p).CombinedOutput(); err != nil {
		b.Fatalf("sgdisk: %v\n%s", err, out)
	}
	f.WriteAt(rawtest.Pattern(1, rawtest.MiB, false), rawtest.MiB)
	f.WriteAt(rawtest.Pattern(2, 14*rawtest.MiB, true), 2*rawtest.MiB)
	return p
}

// BenchmarkContainers builds each container of a 40 MiB mostly-sparse raw
// disk, as kitrun does (read, write, fsync, rename). MB/s is of the raw
// disk; out-bytes is the file's size, alloc-bytes what it occupies.
func BenchmarkContainers(b *testing.B) {
	raw := benchRaw(b)
	in := &disk.Input{Payload: disk.Payload{Name: "bench", Arch: arch.Host()}}
	for _, c := range containers {
		b.Run(c.name, func(b *testing.B) {
			f, err := disk.Lookup(c.name)
			if err != nil {
				b.Fatal(err)
			}
			dir := filepath.Dir(raw) // aws.json sits beside its base
			out := filepath.Join(dir, f.File)
			b.SetBytes(40 * rawtest.MiB)
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
		})
	}
}
