package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// BenchmarkScaling boots examples/minimal.yml on N = 1, 2, 4 and 8 VMs at
// once and reports, for each N, the wall time until every one is ready,
// that time over N (which linear scaling keeps near the one-VM time over
// the number of cores, once N exceeds them), the median QEMU RSS and PSS
// per VM at ready, and the boots that failed.
// Run: go test ./bench -run - -bench Scaling -benchtime 1x -timeout 30m
func BenchmarkScaling(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	img := qemutest.BuildSpec(b, a, filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml"))
	backend := &qemu.Backend{}
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("vms=%d", n), func(b *testing.B) {
			for range b.N {
				wall, rss, pss, failed := bootAtOnce(b, backend, img, n)
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric(wall.Seconds()/float64(n), "wall-per-vm-s")
				b.ReportMetric(rss/(1<<20), "rss-MiB/vm")
				b.ReportMetric(pss/(1<<20), "pss-MiB/vm")
				b.ReportMetric(float64(failed), "failed")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

// bootAtOnce starts n VMs together and waits for all of them; it returns
// the wall time to the last all-ready, the median RSS and PSS per VM
// measured at its ready, and how many failed.
func bootAtOnce(b *testing.B, backend hypervisor.Backend, img *image.Image, n int) (time.Duration, float64, float64, int) {
	var (
		mu       sync.Mutex
		rss, pss []float64
		failed   int
		wg       sync.WaitGroup
		vms      []*vm.VM
	)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := vm.Boot(context.Background(), backend, img, vm.Options{Resources: hypervisor.Resources{Accel: "tcg"}})
			if err == nil {
				mu.Lock()
				vms = append(vms, v)
				mu.Unlock()
				err = v.WaitReady(context.Background(), 10*time.Minute)
			}
			if err == nil {
				if mr, ok := v.Machine.(hypervisor.MemoryReporter); ok {
					if hm, merr := mr.HostMemory(context.Background()); merr == nil {
						mu.Lock()
						rss, pss = append(rss, float64(hm.RSS)), append(pss, float64(hm.PSS))
						mu.Unlock()
					}
				}
			}
			if err != nil {
				b.Logf("a boot of %d failed: %v", n, err)
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	for _, v := range vms {
		v.Shutdown(context.Background(), 10*time.Second)
	}
	return wall, median(rss), median(pss), failed
}
