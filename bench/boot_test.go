package bench

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/floor"
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
	for i := 0; i < b.N; i++ {
		f, err := BootFloor(context.Background(), backend, floorCfg, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		r, err := BootImage(context.Background(), backend, img, vm.Options{Accel: "tcg"}, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		floors = append(floors, f.PowerOff.Seconds())
		readies = append(readies, r.Ready.Seconds())
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
