package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/testcases"
)

// fakeSlurm plays sbatch, squeue, scancel and scontrol: each submitted job
// goes through the states its shard's script lists, then writes the
// shard's results as `kitrun test --shard` would.
type fakeSlurm struct {
	mu       sync.Mutex
	t        *testing.T
	next     int
	jobs     map[string]*fakeJob
	order    []string
	script   map[int][][]string // shard -> per try, the states after submission
	cancels  int
	partials map[int]bool // shards whose results stop after one test
}

type fakeJob struct {
	shard, try int
	states     []string
	dir        string
	testDir    string
	shardSpec  string
}

var resultsFlag = regexp.MustCompile(`'--results' '([^']+)'`)

func (f *fakeSlurm) command(ctx context.Context, name string, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch name {
	case "scontrol":
		return "Slurmctld(primary) at fake is UP\n", nil
	case "sbatch":
		script, _ := os.ReadFile(args[len(args)-1])
		m := resultsFlag.FindStringSubmatch(string(script))
		sh := regexp.MustCompile(`'--shard' '(\d+)/\d+'`).FindStringSubmatch(string(script))
		var idx int
		fmt.Sscan(sh[1], &idx)
		f.next++
		id := fmt.Sprint(f.next)
		try := 0
		for _, j := range f.jobs {
			if j.shard == idx {
				try++
			}
		}
		states := []string{"RUNNING", "COMPLETED"}
		if tries := f.script[idx]; try < len(tries) {
			states = tries[try]
		}
		d := regexp.MustCompile(`'test' '([^']+)'`).FindStringSubmatch(string(script))[1]
		f.jobs[id] = &fakeJob{shard: idx, try: try, states: states, dir: m[1], testDir: d, shardSpec: sh[0]}
		f.order = append(f.order, id)
		return id + "\n", nil
	case "squeue":
		var b strings.Builder
		for _, id := range f.order {
			j := f.jobs[id]
			st := j.states[0]
			if len(j.states) > 1 {
				j.states = j.states[1:]
			}
			if st == "COMPLETED" || st == "TIMEOUT" {
				f.writeResults(j, st == "TIMEOUT")
			}
			fmt.Fprintf(&b, "%s|%s|None|node%d\n", id, st, j.shard)
		}
		return b.String(), nil
	case "scancel":
		f.cancels++
		for _, j := range f.jobs {
			if j.states[0] == "RUNNING" || j.states[0] == "PENDING" {
				j.states = []string{"CANCELLED"}
			}
		}
		return "", nil
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func (f *fakeSlurm) writeResults(j *fakeJob, partial bool) {
	var idx, n int
	fmt.Sscanf(strings.NewReplacer("'", " ", "/", " ").Replace(j.shardSpec), " --shard   %d %d", &idx, &n)
	plan, err := testcases.Plan(testcases.Options{Dir: j.testDir, Shard: testcases.Shard{Index: idx, Count: n}})
	if err != nil {
		f.t.Fatal(err)
	}
	s := &testcases.Summary{Schema: 1, Finished: time.Now()}
	for i, r := range plan {
		if partial && i > 0 {
			break
		}
		r.Status, r.Node = testcases.StatusPassed, fmt.Sprintf("node%d", j.shard)
		s.Results = append(s.Results, r)
	}
	if partial {
		s.Finished = time.Time{}
	}
	s.Recount()
	if err := s.WriteJSON(filepath.Join(j.dir, "results.json")); err != nil {
		f.t.Fatal(err)
	}
}

func runFake(t *testing.T, script map[int][][]string, requeues int) (*testcases.Summary, *fakeSlurm, string) {
	f := &fakeSlurm{t: t, jobs: map[string]*fakeJob{}, script: script}
	var out strings.Builder
	s := &Slurm{Shards: 2, Requeues: requeues, Poll: time.Millisecond, Command: f.command, Binary: "/kitrun", Out: &out}
	sum, err := s.RunTests(context.Background(), testcases.Options{Dir: "../cases", ResultsDir: t.TempDir(), Out: &out,
		Names: mustNames(t, "readiness/*")}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return sum, f, out.String()
}

func mustNames(t *testing.T, globs ...string) testcases.NameFilter {
	n, err := testcases.ParseNameFilter(globs...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSlurmMergesShardsWithTheirNodes(t *testing.T) {
	sum, _, out := runFake(t, nil, 1)
	if sum.Passed != 5 || sum.Failed != 0 || len(sum.Results) != 5 {
		t.Fatalf("got %s, want the 5 readiness tests passed\n%s", sum.ClosingLine(), out)
	}
	for _, r := range sum.Results {
		if r.Node == "" || !strings.HasPrefix(r.ResultsDir, "shard-") {
			t.Errorf("%s: node %q, results dir %q", r.Name, r.Node, r.ResultsDir)
		}
	}
}

func TestSlurmRequeuesALostShardOnceThenFailsIt(t *testing.T) {
	lost := [][]string{{"RUNNING", "NODE_FAIL"}}
	sum, f, out := runFake(t, map[int][][]string{1: lost}, 1)
	if !sum.OK() || !strings.Contains(out, "submitting it again") || len(f.jobs) != 3 {
		t.Fatalf("one loss: got %s with %d jobs\n%s", sum.ClosingLine(), len(f.jobs), out)
	}
	sum, _, out = runFake(t, map[int][][]string{1: append(lost, lost...)}, 1)
	if sum.Failed == 0 || !strings.Contains(out, "NODE_FAIL") {
		t.Fatalf("two losses: got %s\n%s", sum.ClosingLine(), out)
	}
}

func TestSlurmTimeoutKeepsFinishedTestsAndFailsTheRest(t *testing.T) {
	sum, _, out := runFake(t, map[int][][]string{1: {{"RUNNING", "TIMEOUT"}}}, 1)
	timedOut := 0
	for _, r := range sum.Results {
		if strings.Contains(r.Message, "TIMEOUT") {
			timedOut++
		}
	}
	if sum.Passed < 3 || timedOut == 0 {
		t.Fatalf("got %s, %d with TIMEOUT\n%s", sum.ClosingLine(), timedOut, out)
	}
}

func TestSlurmCancelsItsJobsOnInterrupt(t *testing.T) {
	f := &fakeSlurm{t: t, jobs: map[string]*fakeJob{}, script: map[int][][]string{1: {{"RUNNING"}}, 2: {{"RUNNING"}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s := &Slurm{Shards: 2, Poll: time.Millisecond, Command: f.command, Binary: "/kitrun"}
	sum, err := s.RunTests(ctx, testcases.Options{Dir: "../cases", ResultsDir: t.TempDir(), Names: mustNames(t, "readiness/*")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || f.cancels == 0 {
		t.Fatalf("interrupted %v, scancel called %d times", sum.Interrupted, f.cancels)
	}
	for _, j := range f.jobs {
		if j.states[0] == "RUNNING" {
			t.Errorf("job of shard %d left running", j.shard)
		}
	}
}

func TestSlurmUnreachableControllerNamesIt(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "slurm.conf")
	os.WriteFile(conf, []byte("SlurmctldHost=ctl1(10.0.0.1)\nSlurmctldPort=6999\n"), 0o644)
	t.Setenv("SLURM_CONF", conf)
	s := &Slurm{Command: func(ctx context.Context, name string, args ...string) (string, error) {
		return "Slurmctld(primary) at ctl1 is DOWN\n", fmt.Errorf("exit status 1")
	}}
	err := s.CheckController(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ctl1(10.0.0.1)") || !strings.Contains(err.Error(), "6999") ||
		!strings.Contains(err.Error(), "scontrol ping") {
		t.Fatalf("got %v", err)
	}
}

// The real cluster of `make slurm-test` (scripts/slurm-up.sh): skipped when
// none is up, failed when KITRUN_SLURM_REQUIRED=1 (slurm-test sets it).
func TestSlurmClusterRunsAJob(t *testing.T) {
	s := &Slurm{}
	if err := s.CheckController(context.Background()); err != nil {
		if os.Getenv("KITRUN_SLURM_REQUIRED") == "1" {
			t.Fatalf("the Slurm cluster should be up: %v", err)
		}
		t.Skipf("no Slurm cluster (make slurm-up starts one): %v", err)
	}
	out, err := runCommand(context.Background(), "srun", "-N1", "-t1", "-J", "kitrun-go-test", "printenv", "SLURMD_NODENAME")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("srun: %q, %v", out, err)
	}
}
