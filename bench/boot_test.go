package bench

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/floor"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// BenchmarkMinimalVsFloor boots examples/minimal.yml to all-ready and the
// floor to power-off, alternately (floor, image, floor, image, ...) so that
// drift on the machine hits both alike, and reports both medians and their
// ratio. Run: go test ./bench -run - -bench MinimalVsFloor -benchtime 10x
func BenchmarkMinimalVsFloor(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	img := qemutest.BuildSpec(b, a, filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml"))
	initrd, err := floor.Build(context.Background(), a, qemutest.RepoRoot(b), assemble.DefaultCacheDir())
	if err != nil {
		b.Fatal(err)
	}
	backend := &qemu.Backend{}
	floorCfg := hypervisor.Config{Arch: a, Accel: "tcg", Kernel: img.Kernel, Initrd: initrd, Cmdline: img.Cmdline}
	var floors, readies []float64
	b.ResetTimer()
	// ABBA order: on these hosts back-to-back VMs alternate between a fast
	// and a slow slot, which a strict A B A B order would pin to one side.
	for i := 0; i < b.N; i++ {
		bootFloor := func() {
			f, err := BootFloor(context.Background(), backend, floorCfg, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			floors = append(floors, f.PowerOff.Seconds())
		}
		bootImage := func() {
			r, err := BootImage(context.Background(), backend, img, vm.Options{Accel: "tcg"}, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			readies = append(readies, r.Ready.Seconds())
		}
		if i%2 == 0 {
			bootFloor()
			bootImage()
		} else {
			bootImage()
			bootFloor()
		}
	}
	b.StopTimer()
	mf, mr := median(floors), median(readies)
	b.ReportMetric(mf, "floor-poweroff-s")
	b.ReportMetric(mr, "ready-s")
	b.ReportMetric(mr/mf, "ready/floor")
	b.ReportMetric(0, "ns/op")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// BenchmarkCompression boots examples/minimal.yml packed with each initramfs
// compression, interleaved run by run, and reports each one's median
// all-ready time and size: the measurement behind DefaultCompression.
// Run: go test ./bench -run - -bench Compression -benchtime 8x
func BenchmarkCompression(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	spec := filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml")
	names := assemble.Compressions()
	imgs := map[string]*image.Image{}
	for _, c := range names {
		imgs[c] = qemutest.BuildSpec(b, a, spec, func(o *assemble.Options) { o.Compression = c })
	}
	backend := &qemu.Backend{}
	ready := map[string][]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Rotate the order each round so that no compression always
		// follows the same one (back-to-back VMs are not independent here).
		for j := range names {
			c := names[(i+j)%len(names)]
			r, err := BootImage(context.Background(), backend, imgs[c], vm.Options{Accel: "tcg"}, time.Minute)
			if err != nil {
				b.Fatalf("%s: %v", c, err)
			}
			ready[c] = append(ready[c], r.Ready.Seconds())
		}
	}
	b.StopTimer()
	for _, c := range names {
		b.ReportMetric(median(ready[c]), c+"-ready-s")
		b.ReportMetric(float64(imgs[c].Manifest.Initrd.Size), c+"-B")
	}
	b.ReportMetric(0, "ns/op")
}
