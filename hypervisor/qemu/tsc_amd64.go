package qemu

import (
	"sync"
	"time"
)

func rdtsc() uint64

var hostTSC struct {
	once sync.Once
	khz  int
}

// hostTSCkHz measures the host's TSC frequency. Under TCG, QEMU gives an
// x86 guest the host's TSC, so this is the guest's too.
func hostTSCkHz() int {
	hostTSC.once.Do(func() {
		start, t0 := rdtsc(), time.Now()
		time.Sleep(20 * time.Millisecond)
		ticks, d := rdtsc()-start, time.Since(t0)
		hostTSC.khz = int(float64(ticks) / d.Seconds() / 1000)
	})
	return hostTSC.khz
}
