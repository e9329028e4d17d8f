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
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// FloorRun is one boot of the floor.
type FloorRun struct {
	// PowerOff is the time from the machine's start to its exit.
	PowerOff time.Duration
	Accel    string
}

// FloorImage is the floor for img: the same kernel, arch and platform
// with the floor initramfs at initrd, and no network.
func FloorImage(img *image.Image, initrd string) *image.Image {
	return &image.Image{
		Kernel: img.Kernel, Initrd: initrd, Cmdline: img.Cmdline, Arch: img.Arch,
		Manifest: image.Manifest{
			Version: image.ManifestVersion, Name: "floor", Arch: img.Arch.Name,
			Platform: img.Manifest.Platform, Network: image.NetworkNone,
			KernelVersion: img.Manifest.KernelVersion, Kernel: img.Manifest.Kernel,
		},
	}
}

// BootFloor boots a floor image (FloorImage) with res and times it from
// the machine's start to its exit.
func BootFloor(ctx context.Context, backend hypervisor.Backend, floor *image.Image, res hypervisor.Resources, timeout time.Duration) (FloorRun, error) {
	v, err := vm.Boot(ctx, backend, floor, vm.Options{Resources: res})
	if err != nil {
		return FloorRun{}, err
	}
	accel := v.Machine.Info().Accel
	select {
	case <-v.Exited():
	case <-time.After(timeout):
		v.Kill()
		return FloorRun{Accel: accel}, fmt.Errorf("floor did not power off within %s", timeout)
	}
	if err := v.Machine.Err(); err != nil {
		return FloorRun{Accel: accel}, fmt.Errorf("floor: %w", err)
	}
	return FloorRun{PowerOff: v.ExitTime(), Accel: accel}, nil
}

// ImageRun is one boot of an image to all-ready.
type ImageRun struct {
	// Ready is the time from the machine's start to the all-ready event.
	Ready time.Duration
	// Shutdown is the time from the power-off request to the machine's
	// exit.
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
		if m.Stage.Kind == initproto.EvAllReady {
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
