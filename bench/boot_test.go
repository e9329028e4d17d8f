package bench

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	floor := FloorImage(img, initrd)
	tcg := hypervisor.Resources{Accel: "tcg"}
	var floors, readies []float64
	b.ResetTimer()
	// ABBA order: on these hosts back-to-back VMs alternate between a fast
	// and a slow slot, which a strict A B A B order would pin to one side.
	for i := 0; i < b.N; i++ {
		bootFloor := func() {
			f, err := BootFloor(context.Background(), backend, floor, tcg, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			floors = append(floors, f.PowerOff.Seconds())
		}
		bootImage := func() {
			r, err := BootImage(context.Background(), backend, img, vm.Options{Resources: hypervisor.Resources{Accel: "tcg"}}, time.Minute)
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
	if len(xs) == 0 {
		return 0
	}
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
			r, err := BootImage(context.Background(), backend, imgs[c], vm.Options{Resources: hypervisor.Resources{Accel: "tcg"}}, time.Minute)
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

// BenchmarkEventChannelCost measures what kitrun's instrumentation costs the
// guest: examples/minimal.yml booted with the event channel on and off
// (ABBA order), timed by the guest's own uptime at all-ready as kitinit
// prints it on the console — the one clock both variants share.
// Run: go test ./bench -run - -bench EventChannelCost -benchtime 10x
func BenchmarkEventChannelCost(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	img := qemutest.BuildSpec(b, a, filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml"))
	backend := &qemu.Backend{}
	ready := map[bool][]float64{}
	bootOnce := func(channel bool) {
		var console consoleWatch
		console.want = "kitinit: all ready ("
		v, err := vm.Boot(context.Background(), backend, img, vm.Options{Resources: hypervisor.Resources{Accel: "tcg"}, NoEventChannel: !channel, Console: &console})
		if err != nil {
			b.Fatal(err)
		}
		defer v.Kill()
		select {
		case line := <-console.found():
			var up float64
			if _, err := fmt.Sscanf(line[strings.Index(line, "(")+1:], "%fs)", &up); err != nil {
				b.Fatalf("bad line %q: %v", line, err)
			}
			ready[channel] = append(ready[channel], up)
		case <-time.After(time.Minute):
			b.Fatal("no all-ready line on the console")
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first := i%2 == 0
		bootOnce(first)
		bootOnce(!first)
	}
	b.StopTimer()
	on, off := median(ready[true]), median(ready[false])
	b.ReportMetric(on, "guest-ready-channel-s")
	b.ReportMetric(off, "guest-ready-nochannel-s")
	b.ReportMetric((on-off)*1000, "channel-cost-ms")
	b.ReportMetric(0, "ns/op")
}

// consoleWatch passes the first console line containing want.
type consoleWatch struct {
	mu   sync.Mutex
	want string
	buf  []byte
	ch   chan string
	sent bool
}

func (c *consoleWatch) found() chan string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan string, 1)
	}
	return c.ch
}

func (c *consoleWatch) Write(p []byte) (int, error) {
	ch := c.found()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for !c.sent {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		line := string(c.buf[:i])
		c.buf = c.buf[i+1:]
		if strings.Contains(line, c.want) {
			c.sent = true
			ch <- line
		}
	}
	return len(p), nil
}

// BenchmarkDiskVsDirect boots examples/minimal.yml directly and from its
// raw-efi disk under OVMF, in ABBA order, and reports for each the median
// time to all-ready (host clock, from the machine's start), the firmware's
// and boot loader's share (boot.kernel_entry: when, on the host's clock,
// the guest kernel's clock started), and kitrun's own share (the guest's
// uptime at all-ready: kernel start to ready), and the ratio of the
// latter two between disk and direct boots. guest.init_start (the guest's
// uptime when kitinit starts) splits kitrun's share into the kernel's part
// and kitinit's.
// Run: go test ./bench -run - -bench DiskVsDirect -benchtime 6x
func BenchmarkDiskVsDirect(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	img := qemutest.BuildSpec(b, a, filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml"),
		func(o *assemble.Options) { o.Formats = []string{"raw-efi"} })
	backend := &qemu.Backend{}
	got := map[string]map[string][]float64{"direct": {}, "raw-efi": {}}
	run := func(format string) {
		format2 := format
		if format == "direct" {
			format2 = ""
		}
		m, _, err := MeasureImage(backend, img, vm.Options{Resources: hypervisor.Resources{Accel: "tcg"}, Format: format2}, 0, 4*time.Minute)
		if err != nil {
			b.Fatalf("%s: %v", format, err)
		}
		for _, k := range []string{"boot.all_ready", "boot.kernel_entry", "guest.init_start", "guest.all_ready"} {
			got[format][k] = append(got[format][k], m[k])
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			run("direct")
			run("raw-efi")
		} else {
			run("raw-efi")
			run("direct")
		}
	}
	b.StopTimer()
	for _, f := range []string{"direct", "raw-efi"} {
		b.ReportMetric(median(got[f]["boot.all_ready"]), f+"-ready-s")
		b.ReportMetric(median(got[f]["boot.kernel_entry"]), f+"-kernel-entry-s")
		b.ReportMetric(median(got[f]["guest.init_start"]), f+"-guest-init-s")
		b.ReportMetric(median(got[f]["guest.all_ready"]), f+"-guest-ready-s")
	}
	b.ReportMetric(median(got["raw-efi"]["guest.all_ready"])/median(got["direct"]["guest.all_ready"]), "kitrun-share-disk/direct")
	b.ReportMetric(0, "ns/op")
}
