// Package executor is where a `kitrun test` run executes: Local runs it in
// this process (today's behaviour, the default), Slurm splits it into
// shards (testcases.Shard), runs each as a `kitrun test --shard i/N` batch
// job on a Slurm cluster, and merges the shards' results into the reports
// a local run writes (results.json, junit.xml), each test carrying the node
// it ran on (Result.Node).
package executor

import (
	"context"
	"fmt"

	"github.com/kitrun/kitrun/testcases"
)

// Executor runs a test run.
type Executor interface {
	// RunTests runs the tests o selects. shardArgs are the `kitrun test`
	// flags (filters, timeouts, accelerator...) a remote shard must be
	// given to run the same tests the same way; Local ignores them.
	RunTests(ctx context.Context, o testcases.Options, shardArgs []string) (*testcases.Summary, error)
}

// Local runs the tests in this process: testcases.Run.
type Local struct{}

// RunTests implements Executor.
func (Local) RunTests(ctx context.Context, o testcases.Options, _ []string) (*testcases.Summary, error) {
	return testcases.Run(ctx, o)
}

// Names are the executors `--executor` accepts.
var Names = []string{"local", "slurm"}

// Check says whether name is an executor.
func Check(name string) error {
	for _, n := range Names {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("unknown executor %q (want local or slurm)", name)
}
