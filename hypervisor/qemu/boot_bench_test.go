package qemu_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// benchVariant is one way of booting examples/minimal.yml.
type benchVariant struct {
	name    string
	backend *qemu.Backend
}

// benchBoots boots examples/minimal.yml (TCG, q35, 256 MiB) with each
// variant in turn, the order reversed every other round (A B B A: drift and
// the fast/slow alternation of back-to-back VMs on these hosts hit all
// alike), and reports per variant the median time to all-ready from QEMU's
// start, the guest's uptime at all-ready, and QEMU's resident memory half a
// second after all-ready with its parts.
func benchBoots(b *testing.B, variants []benchVariant) {
	a := qemutest.Require(b, "x86_64")
	img := qemutest.BuildSpec(b, a, filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml"))
	metrics := map[string]map[string][]float64{}
	boot := func(v benchVariant) {
		ctx := context.Background()
		m, err := vm.Boot(ctx, v.backend, img, vm.Options{Resources: hypervisor.Resources{Accel: "tcg", Machine: "q35"}})
		if err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		defer m.Shutdown(ctx, 10*time.Second)
		if err := m.WaitReady(ctx, 2*time.Minute); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		add := func(k string, x float64) {
			if metrics[v.name] == nil {
				metrics[v.name] = map[string][]float64{}
			}
			metrics[v.name][k] = append(metrics[v.name][k], x)
		}
		for _, mk := range m.Timeline() {
			if mk.Stage.Kind == initproto.EvAllReady {
				add("ready-s", mk.Host.Seconds())
				add("guest-ready-s", mk.Guest)
			}
		}
		time.Sleep(500 * time.Millisecond)
		if r, ok := m.Machine.(hypervisor.MemoryReporter); ok {
			if hm, err := r.HostMemory(ctx); err == nil {
				add("rss-MiB", float64(hm.RSS)/(1<<20))
				add("guest-ram-MiB", float64(hm.GuestResident)/(1<<20))
				add("code-cache-MiB", float64(hm.CodeCache)/(1<<20))
				add("files-MiB", float64(hm.Files)/(1<<20))
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		order := slices.Clone(variants)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, v := range order {
			boot(v)
		}
	}
	b.StopTimer()
	for _, v := range variants {
		for k, xs := range metrics[v.name] {
			b.ReportMetric(median(xs), v.name+"-"+k)
		}
	}
	if len(variants) == 2 {
		a, c := metrics[variants[0].name]["ready-s"], metrics[variants[1].name]["ready-s"]
		var ratios []float64
		for i := range min(len(a), len(c)) {
			ratios = append(ratios, a[i]/c[i])
		}
		b.ReportMetric(median(ratios), variants[0].name+"/"+variants[1].name+"-ready")
	}
	b.ReportMetric(0, "ns/op")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// BenchmarkPVH compares entering the kernel by PVH (the ELF inside the
// bzImage) with booting the bzImage, which decompresses itself.
// Run: go test ./hypervisor/qemu -run - -bench PVH -benchtime 8x
func BenchmarkPVH(b *testing.B) {
	benchBoots(b, []benchVariant{{"pvh", &qemu.Backend{}}, {"bzimage", &qemu.Backend{NoPVH: true}}})
}

// BenchmarkTBSize compares kitrun's TCG translation buffer
// (qemu.DefaultTBSizeMiB) with QEMU's default of 1 GiB.
// Run: go test ./hypervisor/qemu -run - -bench TBSize -benchtime 8x
func BenchmarkTBSize(b *testing.B) {
	benchBoots(b, []benchVariant{{"tb32", &qemu.Backend{}}, {"tbqemu", &qemu.Backend{TBSizeMiB: -1}}})
}
