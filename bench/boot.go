// Package bench measures images: boot time by stage against the floor (the
// same kernel, machine and accelerator with an init that powers off at once),
// memory and disk use, over repeated interleaved runs, with statistics and
// reports that benchmark tools and dashboards read.
package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// FloorRun is one boot of the floor.
type FloorRun struct {
	// PowerOff is the time from QEMU exec to QEMU's exit.
	PowerOff time.Duration
	Accel    string
}

// BootFloor boots kernel with the floor initramfs on cfg's arch, machine
// and accelerator, and times it from QEMU exec to exit.
func BootFloor(ctx context.Context, backend hypervisor.Backend, cfg hypervisor.Config, timeout time.Duration) (FloorRun, error) {
	m, err := backend.Start(ctx, cfg)
	if err != nil {
		return FloorRun{}, err
	}
	var exited time.Duration
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				if err := m.Err(); err != nil {
					return FloorRun{}, fmt.Errorf("floor: qemu: %w", err)
				}
				if exited == 0 {
					return FloorRun{}, fmt.Errorf("floor: no exit event")
				}
				return FloorRun{PowerOff: exited, Accel: m.Info().Accel}, nil
			}
			if ev.Kind == hypervisor.EvExited {
				exited = ev.Host
			}
		case <-t.C:
			m.Kill()
			return FloorRun{}, fmt.Errorf("floor did not power off within %s", timeout)
		}
	}
}

// ImageRun is one boot of an image to all-ready.
type ImageRun struct {
	// Ready is the time from QEMU exec to the all-ready event.
	Ready time.Duration
	// Shutdown is the time from the power-off request to QEMU's exit.
	Shutdown time.Duration
	Timeline []vm.Mark
	Accel    string
}

// BootImage boots img to all-ready, then powers it off gracefully.
func BootImage(ctx context.Context, backend hypervisor.Backend, img *image.Image, opts vm.Options, timeout time.Duration) (ImageRun, error) {
	v, err := vm.Boot(ctx, backend, img, opts)
	if err != nil {
		return ImageRun{}, err
	}
	if err := v.WaitReady(ctx, timeout); err != nil {
		v.Shutdown(context.Background(), 5*time.Second)
		return ImageRun{}, err
	}
	run := ImageRun{Accel: v.Machine.Info().Accel}
	for _, m := range v.Timeline() {
		if m.Stage == "all-ready" {
			run.Ready = m.Host
		}
	}
	start := time.Now()
	if err := v.Shutdown(ctx, 10*time.Second); err != nil {
		return run, fmt.Errorf("shutdown: %w", err)
	}
	run.Shutdown = time.Since(start)
	run.Timeline = v.Timeline()
	return run, nil
}
