package main

import (
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/gcp/gcpfake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestGCPBackendCommands runs `kitrun run`, `bench` and `test` with
// --backend gcp against the fakes (Cloud Storage and a Compute Engine
// that boots the image with QEMU, in this test process; no credentials:
// the endpoints are on loopback), a detached run stopped with `kitrun
// stop`, a run killed with SIGKILL whose instance the next kitrun start
// deletes, then `kitrun cloud sweep` removes the images they left. Five
// boots under TCG.
func TestGCPBackendCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three VMs")
	}
	qemutest.Require(t, "x86_64")
	f := gcpfake.Start(t, gcpfake.Options{Boot: true})
	testCloudCommands(t, cloudCLI{
		backend: "gcp", format: "gcp", fakeOptions: f.BackendOptions(),
		benchMetrics: []string{"boot.api_accepted", "boot.instance_running", "boot.first_output", "boot.all_ready"},
		imagesMade: func(t *testing.T) {
			if n := f.Calls("images.insert"); n != 2 {
				// minimal.yml's gcp disk once for run and bench; the test case's once.
				t.Errorf("%d images made, want 2 (one per disk digest)", n)
			}
		},
		afterTests: func(t *testing.T) {
			if r := f.Transient(); len(r) != 0 {
				t.Errorf("left after run, bench and test: %v", r)
			}
		},
		afterStop: func(t *testing.T) {
			for deadline := time.Now().Add(time.Minute); len(f.Transient()) != 0; time.Sleep(200 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("a minute after kitrun stop, left: %v", f.Transient())
				}
			}
		},
		// kill -9 mid-run: the instance outlives kitrun; the next kitrun
		// start deletes it from the runtime directory's record.
		killedRun: func(t *testing.T, killAtReady, nextStart func()) {
			before := f.Instances()
			killAtReady()
			killed := ""
			for name, st := range f.Instances() {
				if _, old := before[name]; !old {
					killed = name
					if st != "RUNNING" {
						t.Fatalf("after kill -9 of kitrun its instance is %s, want it still running", st)
					}
				}
			}
			if killed == "" {
				t.Fatal("the killed run's instance is gone already")
			}
			nextStart()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if _, ok := f.Instances()[killed]; !ok {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("30s after the next kitrun start, the killed run's instance %s is still there", killed)
				}
			}
		},
		wouldDelete: "image", resources: f.Resources,
	})
}
