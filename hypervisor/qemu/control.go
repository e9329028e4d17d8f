package qemu

import (
	"context"

	"github.com/kitrun/kitrun/hypervisor"
)

var (
	_ hypervisor.Controller     = (*machine)(nil)
	_ hypervisor.MemoryReporter = (*machine)(nil)
)

// Pause implements hypervisor.Controller: QMP stop.
func (m *machine) Pause(ctx context.Context) error {
	_, err := m.runQMP(ctx, "stop", nil)
	return err
}

// Resume implements hypervisor.Controller: QMP cont.
func (m *machine) Resume(ctx context.Context) error {
	_, err := m.runQMP(ctx, "cont", nil)
	return err
}
