package bench

import (
	"reflect"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/vm"
)

func TestSlotOrderIsABBA(t *testing.T) {
	var order []int
	for round := 0; round < 4; round++ {
		for i := 0; i < 3; i++ {
			order = append(order, slot(round, i, 3))
		}
	}
	want := []int{0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	// Every configuration lands on even and odd positions equally, so a
	// host that alternates fast and slow slots treats all alike.
	parity := map[int][2]int{}
	for pos, c := range order {
		p := parity[c]
		p[pos%2]++
		parity[c] = p
	}
	for c, p := range parity {
		if p[0] != p[1] {
			t.Errorf("config %d: %d even and %d odd slots", c, p[0], p[1])
		}
	}
}

func TestTimelineMetrics(t *testing.T) {
	marks := []vm.Mark{
		{Stage: vm.Stage{Kind: "vmm-ready"}, Host: 40 * time.Millisecond, Guest: -1},
		{Stage: vm.Stage{Kind: "firmware"}, Host: 60 * time.Millisecond, Guest: -1},
		{Stage: vm.Stage{Kind: "init-start"}, Host: 2 * time.Second, Guest: 1.5},
		{Stage: vm.Stage{Kind: "modules-loaded"}, Host: 2100 * time.Millisecond, Guest: 1.6},
		{Stage: vm.Stage{Kind: "network-up"}, Host: 2200 * time.Millisecond, Guest: 1.7},
		{Stage: vm.Stage{Kind: "task-done", Name: "render"}, Host: 2300 * time.Millisecond, Guest: 1.8},
		{Stage: vm.Stage{Kind: "service-started", Name: "web"}, Host: 2350 * time.Millisecond, Guest: 1.85},
		{Stage: vm.Stage{Kind: "service-ready", Name: "web"}, Host: 2400 * time.Millisecond, Guest: 1.9},
		{Stage: vm.Stage{Kind: "all-ready"}, Host: 2500 * time.Millisecond, Guest: 2.0},
	}
	got := TimelineMetrics(marks)
	want := map[string]float64{
		"boot.vmm_ready": 0.04, "boot.first_output": 0.06, "boot.init_start": 2, "guest.init_start": 1.5, "boot.modules_loaded": 2.1,
		"boot.network_up": 2.2, "boot.task.render": 2.3, "boot.service_ready.web": 2.4,
		"boot.all_ready": 2.5, "guest.all_ready": 2.0, "boot.kernel_entry": 0.5, "guest.userspace": 0.5,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestGuestMemoryMetrics(t *testing.T) {
	got := GuestMemoryMetrics(map[string]int64{"mem_total": 1000, "mem_available": 700, "mem_free": 600, "rss_web": 50, "rss_kitinit": 20, "rootfs_used": 5})
	want := map[string]float64{"mem.guest_total": 1000, "mem.guest_available": 700, "mem.guest_used": 300,
		"mem.service_rss.web": 50, "mem.service_rss.kitinit": 20, "mem.guest_rootfs": 5}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestComponent(t *testing.T) {
	for origin, want := range map[string]string{
		"kernel module virtio_net":      "module.virtio_net",
		"service web":                   "service.web",
		"shared library of service web": "service.web",
		"onboot task render":            "onboot_task.render",
		"files[2] /etc/motd":            "files",
		"kitinit":                       "kitinit",
		"kitinit configuration":         "kitinit",
		"kitrun (parent directory)":     "kitrun",
	} {
		if got := component(origin); got != want {
			t.Errorf("component(%q) = %q, want %q", origin, got, want)
		}
	}
}

// A restored configuration's ratio.all_ready_cold pairs each run with its
// cold twin's run of the same round, skipping failed and unpaired runs.
func TestSnapshotRatios(t *testing.T) {
	sample := func(run int, ready float64, errs string) Sample {
		return Sample{Run: run, Error: errs, Metrics: map[string]float64{"boot.all_ready": ready}}
	}
	r := &Results{Configs: []Config{
		{ID: "m/x86_64/q35/256M/tcg", Samples: []Sample{sample(1, 4, ""), sample(2, 5, ""), sample(3, 4, "boom")}},
		{ID: "m/x86_64/q35/256M/tcg" + SnapshotSuffix, Snapshot: true,
			Samples: []Sample{sample(1, 1, ""), sample(2, 1, ""), sample(3, 1, ""), sample(4, 1, "")}},
	}}
	r.summarize()
	s := r.Configs[1].Samples
	if s[0].Metrics["ratio.all_ready_cold"] != 0.25 || s[1].Metrics["ratio.all_ready_cold"] != 0.2 {
		t.Errorf("ratios %v, %v; want 0.25, 0.2", s[0].Metrics, s[1].Metrics)
	}
	for _, x := range s[2:] {
		if _, ok := x.Metrics["ratio.all_ready_cold"]; ok {
			t.Errorf("run %d has a ratio without a successful cold twin", x.Run)
		}
	}
	if st, ok := r.Configs[1].Stats["ratio.all_ready_cold"]; !ok || st.N != 2 {
		t.Errorf("paired stats %+v (present %v), want 2 pairs", st, ok)
	}
	if _, ok := r.Configs[0].Stats["ratio.all_ready_cold"]; ok {
		t.Error("the cold configuration has a ratio to itself")
	}
}
