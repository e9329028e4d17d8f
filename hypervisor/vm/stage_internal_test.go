package vm

import (
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// TestStageNeverGoesBack: the streams are read concurrently, so a backend's
// vmm-ready or the console's first byte may be handled after the guest's
// first events (the fake backend does this every time). The stage reached
// stays the guest's; the marks stay in host-time order.
func TestStageNeverGoesBack(t *testing.T) {
	v := &VM{stage: Stage{Kind: StageStarted}}
	v.markLocked(Stage{Kind: hypervisor.EvVMMReady}, 1*time.Millisecond, -1)
	v.markLocked(Stage{Kind: initproto.EvTaskDone, Name: "render"}, 5*time.Millisecond, 0.5)
	v.markLocked(Stage{Kind: StageFirmware}, 6*time.Millisecond, -1)
	v.markLocked(Stage{Kind: StageKernel}, 4*time.Millisecond, -1)
	if got := v.stage.String(); got != "task-done render" {
		t.Errorf("stage %q after late firmware and kernel marks, want task-done render", got)
	}
	for i := 1; i < len(v.marks); i++ {
		if v.marks[i-1].Host > v.marks[i].Host {
			t.Errorf("marks out of host-time order: %+v", v.marks)
		}
	}
	v.markLocked(Stage{Kind: initproto.EvAllReady}, 7*time.Millisecond, 0.6)
	if got := v.stage.String(); got != "all-ready" {
		t.Errorf("stage %q, want all-ready", got)
	}
}

// TestStoppedItself: a guest that halted before the host asked stopped
// itself, even when the host handled its exit only after asking; one that
// began shutting down after the request did not.
func TestStoppedItself(t *testing.T) {
	halted := &VM{stage: Stage{Kind: StageStarted}, exitAt: 3 * time.Millisecond, stopAsked: 5 * time.Millisecond}
	if !halted.StoppedItself() {
		t.Error("a machine that exited before the host asked did not stop itself")
	}
	asked := &VM{stage: Stage{Kind: StageStarted}, exitAt: 9 * time.Millisecond, stopAsked: 5 * time.Millisecond}
	asked.markLocked(Stage{Kind: initproto.EvShutdown}, 6*time.Millisecond, 1)
	if asked.StoppedItself() {
		t.Error("a guest that shut down after the host asked stopped itself")
	}
	never := &VM{stage: Stage{Kind: StageStarted}, exitAt: 9 * time.Millisecond}
	if !never.StoppedItself() {
		t.Error("a machine the host never asked to stop did not stop itself")
	}
}
