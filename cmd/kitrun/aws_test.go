package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/aws/awsfake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestAWSBackendCommands runs `kitrun run`, `bench` and `test` with
// --backend aws against the fakes (S3 and an EC2 that boots the imported
// disk with QEMU, in this test process), then `kitrun cloud sweep`
// removes the image they shared. Three boots under TCG.
func TestAWSBackendCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three VMs")
	}
	qemutest.Require(t, "x86_64")
	f := awsfake.Start(t, awsfake.Options{Boot: true})
	f.Env(t) // the kitrun processes inherit the fake credentials
	kitrun := testCloudCommands(t, cloudCLI{
		backend: "aws", format: "aws", fakeOptions: f.BackendOptions(),
		benchMetrics: []string{"boot.api_accepted", "boot.instance_running", "boot.first_output", "boot.all_ready"},
		imagesMade: func(t *testing.T) {
			if n := f.Calls("ImportSnapshot"); n != 2 {
				// minimal.yml's aws disk once for run and bench; the test case's once.
				t.Errorf("%d imports, want 2 (one per disk digest)", n)
			}
		},
		// kill -9 mid-run: the instance outlives kitrun; the next kitrun
		// start destroys it from the runtime directory's record, and the
		// image is left for the sweep.
		killedRun: func(t *testing.T, killAtReady, nextStart func()) {
			killAtReady()
			insts := f.Instances()
			last := insts[len(insts)-1]
			if last[1] != "running" {
				t.Fatalf("after kill -9 of kitrun its instance is %v, want it still running", last)
			}
			nextStart()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				insts = f.Instances()
				if st := insts[len(insts)-1][1]; st == "terminated" {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("30s after the next kitrun start, the killed run's instance is %s", st)
				}
			}
		},
		wouldDelete: "image", resources: f.Resources,
	})
	out, err := kitrun("cloud", "sweep", "--backend", "qemu")
	if err == nil || !strings.Contains(out, "aws") {
		t.Errorf("sweep of a backend without a cloud must fail naming the cloud backends: %v\n%s", err, out)
	}
}
