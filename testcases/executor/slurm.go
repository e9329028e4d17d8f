package executor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kitrun/kitrun/testcases"
)

// Slurm runs a test run as Shards batch jobs on a Slurm cluster. Each job
// runs `Binary test DIR --shard i/N --results RESULTS/shard-i ...` on a
// node; RESULTS (and DIR, and kitrun's cache) must be on storage the nodes
// share with this machine. The jobs of one run share the job name
// kitrun-RUNID and carry the run ID in their comment, so that they can be
// found and cancelled: every job of the run is cancelled when RunTests
// returns, whatever happened, and when ctx is cancelled (Ctrl-C).
//
// Faults: a job that ends NODE_FAIL, BOOT_FAIL or PREEMPTED, or vanishes
// without results, is submitted again up to Requeues times (the job is
// submitted with --no-requeue, so that kitrun, not the site's JobRequeue,
// decides), then its tests are reported failed; a job that times out or is
// cancelled by someone else has its finished tests reported as they ended
// and the others failed with the job's state and reason. A controller that
// does not answer is an error naming it before anything is submitted.
type Slurm struct {
	// Shards is how many jobs the run is split into (default 2).
	Shards int
	// Partition, Constraint (node features, e.g. kvm), Gres (e.g. kvm:1),
	// Mem (--mem, e.g. 4G; default 1G per test at once) and Time (--time, e.g. 30 or 1:00:00) go to
	// sbatch when set. CPUs is --cpus-per-task (default the run's
	// Parallel: a TCG guest keeps a core busy).
	Partition, Constraint, Gres, Mem, Time string
	CPUs                                   int
	// SbatchArgs are more sbatch options, as given.
	SbatchArgs []string
	// Binary is kitrun's path on the nodes (default this executable's
	// path, for a binary on shared storage or installed at the same place
	// on every node).
	Binary string
	// Requeues is how often a shard whose node was lost is submitted again.
	Requeues int
	// Poll is the interval between queue checks (default 2s); Deadline
	// bounds the whole wait (default 12h), after which the jobs are
	// cancelled and their unfinished tests reported failed.
	Poll, Deadline time.Duration
	// RunID tags the run's jobs (default a timestamp and random suffix).
	RunID string
	// Out receives progress lines and the per-test lines.
	Out io.Writer
	// Command runs a Slurm client command and returns its standard output
	// (default: exec with a 30 s deadline). A test seam.
	Command func(ctx context.Context, name string, args ...string) (string, error)
}

// Terminal job states, and those where the node (not the tests) failed.
var (
	terminalStates = map[string]bool{"COMPLETED": true, "FAILED": true, "TIMEOUT": true, "CANCELLED": true,
		"NODE_FAIL": true, "BOOT_FAIL": true, "PREEMPTED": true, "OUT_OF_MEMORY": true, "DEADLINE": true}
	lostStates = map[string]bool{"NODE_FAIL": true, "BOOT_FAIL": true, "PREEMPTED": true, "LOST": true}
)

type shard struct {
	index   int
	plan    []*testcases.Result
	try     int
	dir     string // results directory of the current try (absolute)
	job     string
	state   string
	reason  string
	node    string
	done    bool
	history []string // earlier tries: "job 12 NODE_FAIL on n1"
	summary *testcases.Summary
	// command is the kitrun command line (after the binary) that runs
	// the shard with its results in dir.
	command func(dir string) []string
	// results is the file, in the results directory, that a finished
	// shard leaves.
	results string
	what    string // "test(s)" or "run(s)"
	runs    int    // a bench shard's runs
}

func (s *Slurm) defaults(o *testcases.Options) error {
	if s.Shards <= 0 {
		s.Shards = 2
	}
	if s.CPUs <= 0 {
		s.CPUs = max(o.Parallel, 1)
	}
	if s.Mem == "" {
		// A guest's default memory plus QEMU's, per test at once: without
		// it a site with memory accounting gives each job a whole node.
		s.Mem = fmt.Sprintf("%dM", max(o.Parallel, 1)*1024)
	}
	if s.Poll <= 0 {
		s.Poll = 2 * time.Second
	}
	if s.Deadline <= 0 {
		s.Deadline = 12 * time.Hour
	}
	if s.Requeues < 0 {
		s.Requeues = 0
	}
	if s.Out == nil {
		s.Out = io.Discard
	}
	if s.Command == nil {
		s.Command = runCommand
	}
	if s.RunID == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		s.RunID = time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
	}
	if s.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("kitrun's path for the nodes: %w (give one)", err)
		}
		s.Binary = exe
	}
	if o.ResultsDir == "" {
		o.ResultsDir = filepath.Join("out", "test-results", time.Now().Format("20060102-150405"))
	}
	var err error
	if o.ResultsDir, err = filepath.Abs(o.ResultsDir); err != nil {
		return err
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

// JobName is the name every job of the run carries.
func (s *Slurm) JobName() string { return "kitrun-" + s.RunID }

func runCommand(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no answer within 30 s")
		}
		if msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return stdout.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// CheckController asks the controller for a ping; the error names the
// controller from the configuration and what was tried.
func (s *Slurm) CheckController(ctx context.Context) error {
	if s.Command == nil {
		s.Command = runCommand
	}
	out, err := s.Command(ctx, "scontrol", "ping")
	if err == nil && strings.Contains(out, " is UP") {
		return nil
	}
	var execErr *exec.Error
	if errors.As(err, &execErr) {
		return fmt.Errorf("the Slurm executor needs Slurm's client commands (sbatch, squeue, scontrol, scancel) on PATH: %w", err)
	}
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = "/etc/slurm/slurm.conf"
	}
	host, port := controllerOf(conf)
	detail := strings.TrimSpace(out)
	if err != nil {
		detail = err.Error()
	}
	return fmt.Errorf("the Slurm controller %s (port %s, from %s) is unreachable: tried `scontrol ping`: %s; nothing was submitted",
		host, port, conf, firstLines(detail, 3))
}

// controllerOf reads SlurmctldHost and SlurmctldPort from a slurm.conf.
func controllerOf(conf string) (host, port string) {
	host, port = "(unknown: "+conf+" unreadable)", "6817"
	f, err := os.Open(conf)
	if err != nil {
		return host, port
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "slurmctldhost", "controlmachine":
			if !strings.HasPrefix(host, "(unknown") {
				host += ", " + v // backups
			} else {
				host = v
			}
		case "slurmctldport":
			port = v
		}
	}
	return host, port
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}

// RunTests implements Executor.
func (s *Slurm) RunTests(ctx context.Context, o testcases.Options, shardArgs []string) (sum *testcases.Summary, err error) {
	if err := s.defaults(&o); err != nil {
		return nil, err
	}
	started := time.Now()
	all, err := testcases.Plan(o)
	if err != nil {
		return nil, err
	}
	var shards []*shard
	for i := 1; i <= s.Shards; i++ {
		so := o
		so.Shard = testcases.Shard{Index: i, Count: s.Shards}
		p, err := testcases.Plan(so)
		if err != nil {
			return nil, err
		}
		if len(p) > 0 {
			shards = append(shards, &shard{index: i, plan: p, results: "results.json", what: "test(s)",
				command: func(dir string) []string {
					return append([]string{"test", o.Dir, "--shard", fmt.Sprintf("%d/%d", i, s.Shards), "--results", dir}, shardArgs...)
				}})
		}
	}
	if err := s.CheckController(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.ResultsDir, "slurm"), 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "kitrun test: %d test(s) from %s in %d Slurm job(s) (run %s, job name %s); results in %s\n",
		len(all), o.Dir, len(shards), s.RunID, s.JobName(), o.ResultsDir)
	// Whatever happens from here, no job of the run outlives it.
	defer func() {
		if cerr := s.cancelAll(o.Out); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	for _, sh := range shards {
		if err := s.submit(ctx, &o, sh); err != nil {
			return nil, err
		}
	}
	interrupted := s.wait(ctx, &o, shards)

	sum = &testcases.Summary{Schema: 1, Dir: o.Dir, ResultsDir: o.ResultsDir, Started: started,
		Interrupted: interrupted}
	for _, sh := range shards {
		sum.Results = append(sum.Results, s.merge(&o, sh, interrupted)...)
		if sh.summary != nil {
			sum.GroupErrors = append(sum.GroupErrors, sh.summary.GroupErrors...)
		}
	}
	order := map[string]int{}
	for i, r := range all {
		order[key(r)] = i
	}
	slicesSortByOrder(sum.Results, order)
	sum.Finished = time.Now()
	sum.Duration = testcases.Seconds(sum.Finished.Sub(started))
	sum.Recount()
	for _, r := range sum.Results {
		printResult(o.Out, o.ResultsDir, r)
	}
	var werr error
	if e := sum.WriteJSON(filepath.Join(o.ResultsDir, "results.json")); e != nil {
		werr = errors.Join(werr, e)
	}
	if e := testcases.WriteJUnit(filepath.Join(o.ResultsDir, "junit.xml"), sum); e != nil {
		werr = errors.Join(werr, e)
	}
	if interrupted {
		fmt.Fprintln(o.Out, "interrupted: the run's jobs were cancelled; tests not finished are counted as skipped")
	}
	fmt.Fprintf(o.Out, "results: %s\n%s\n", o.ResultsDir, sum.ClosingLine())
	return sum, werr
}

func key(r *testcases.Result) string { return r.Name + "\x00" + r.Arch }

func slicesSortByOrder(rs []*testcases.Result, order map[string]int) {
	// Insertion sort: runs are small and the order is nearly right.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && order[key(rs[j])] < order[key(rs[j-1])]; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// submit writes the shard's job script and submits it.
func (s *Slurm) submit(ctx context.Context, o *testcases.Options, sh *shard) error {
	sh.try++
	name := fmt.Sprintf("shard-%d", sh.index)
	if sh.try > 1 {
		name = fmt.Sprintf("shard-%d-try%d", sh.index, sh.try)
	}
	sh.dir = filepath.Join(o.ResultsDir, name)
	sh.job, sh.state, sh.reason, sh.node, sh.done, sh.summary = "", "", "", "", false, nil
	if err := os.RemoveAll(sh.dir); err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	words := append([]string{s.Binary}, sh.command(sh.dir)...)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	script := fmt.Sprintf("#!/bin/sh\n# kitrun run %s, shard %d/%d, try %d (written by kitrun's Slurm executor)\nexec %s\n",
		s.RunID, sh.index, s.Shards, sh.try, strings.Join(words, " "))
	scriptPath := filepath.Join(o.ResultsDir, "slurm", name+".sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o755); err != nil {
		return err
	}
	args := []string{"--parsable", "--job-name=" + s.JobName(),
		fmt.Sprintf("--comment=kitrun run=%s shard=%d/%d try=%d", s.RunID, sh.index, s.Shards, sh.try),
		"--output=" + filepath.Join(o.ResultsDir, "slurm", name+".%j.out"),
		"--chdir=" + cwd, "--no-requeue", "--nodes=1", "--ntasks=1",
		fmt.Sprintf("--cpus-per-task=%d", s.CPUs)}
	for _, opt := range []struct{ flag, v string }{{"partition", s.Partition}, {"constraint", s.Constraint},
		{"gres", s.Gres}, {"mem", s.Mem}, {"time", s.Time}} {
		if opt.v != "" {
			args = append(args, "--"+opt.flag+"="+opt.v)
		}
	}
	args = append(args, s.SbatchArgs...)
	args = append(args, scriptPath)
	out, err := s.Command(ctx, "sbatch", args...)
	if err != nil {
		return fmt.Errorf("submitting shard %d/%d: %w", sh.index, s.Shards, err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";") // "ID[;cluster]"
	if id == "" {
		return fmt.Errorf("submitting shard %d/%d: sbatch printed no job ID", sh.index, s.Shards)
	}
	sh.job = id
	fmt.Fprintf(o.Out, "slurm: shard %d/%d (%d %s): job %s submitted (try %d)\n", sh.index, s.Shards, sh.size(), sh.what, id, sh.try)
	return nil
}

type jobState struct{ state, reason, node string }

// queue returns the run's jobs as the controller knows them, by job ID.
func (s *Slurm) queue(ctx context.Context) (map[string]jobState, error) {
	out, err := s.Command(ctx, "squeue", "--noheader", "--states=all", "--name="+s.JobName(), "--format=%i|%T|%r|%N")
	if err != nil {
		return nil, err
	}
	jobs := map[string]jobState{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(l), "|")
		if len(f) == 4 {
			jobs[f[0]] = jobState{state: f[1], reason: f[2], node: f[3]}
		}
	}
	return jobs, nil
}

// wait polls the queue until every shard is done, requeueing lost ones.
// It returns whether ctx was cancelled.
func (s *Slurm) wait(ctx context.Context, o *testcases.Options, shards []*shard) (interrupted bool) {
	deadline := time.Now().Add(s.Deadline)
	failedPolls := 0
	tick := time.NewTicker(s.Poll)
	defer tick.Stop()
	for {
		pending := 0
		for _, sh := range shards {
			if !sh.done {
				pending++
			}
		}
		if pending == 0 {
			return false
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(o.Out, "slurm: interrupted: cancelling the run's jobs (%s)\n", s.JobName())
			_ = s.cancelAll(io.Discard)
			// Let the shards write what they finished (they get SIGTERM,
			// then SIGKILL after the site's KillWait).
			s.settle(shards, 90*time.Second)
			return true
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(o.Out, "slurm: the run's deadline (%s) passed: cancelling its jobs\n", s.Deadline)
			_ = s.cancelAll(io.Discard)
			s.settle(shards, 90*time.Second)
			for _, sh := range shards {
				if !sh.done {
					sh.done, sh.state, sh.reason = true, "DEADLINE", "kitrun's wait deadline passed"
				}
			}
			return false
		}
		jobs, err := s.queue(ctx)
		if err != nil {
			failedPolls++
			if failedPolls == 1 || failedPolls%30 == 0 {
				fmt.Fprintf(o.Out, "slurm: polling the queue failed (%d time(s)): %v\n", failedPolls, err)
			}
			continue
		}
		failedPolls = 0
		for _, sh := range shards {
			if sh.done {
				continue
			}
			j, known := jobs[sh.job]
			if !known {
				// Purged from the controller's memory: finished long ago,
				// or lost. The shard's results say which.
				if _, err := os.Stat(filepath.Join(sh.dir, sh.results)); err == nil {
					j = jobState{state: "GONE", reason: "the job left the queue; its results are there", node: sh.node}
				} else {
					j = jobState{state: "LOST", reason: "the job is gone from the queue without results", node: sh.node}
				}
			}
			if j.state != sh.state {
				where := ""
				if j.node != "" {
					where = " on " + j.node
				}
				fmt.Fprintf(o.Out, "slurm: shard %d/%d: job %s %s%s%s\n", sh.index, s.Shards, sh.job, j.state, where, reasonText(j.reason))
			}
			sh.state, sh.reason = j.state, j.reason
			if j.node != "" {
				sh.node = j.node
			}
			if !terminalStates[j.state] && j.state != "LOST" && j.state != "GONE" {
				continue
			}
			if lostStates[j.state] && sh.try <= s.Requeues {
				sh.history = append(sh.history, fmt.Sprintf("job %s %s on %s%s", sh.job, j.state, orUnknown(sh.node), reasonText(j.reason)))
				fmt.Fprintf(o.Out, "slurm: shard %d/%d: node lost; submitting it again (%d of %d)\n", sh.index, s.Shards, sh.try, s.Requeues)
				if err := s.submit(ctx, o, sh); err != nil {
					fmt.Fprintf(o.Out, "slurm: %v\n", err)
					sh.done = true
				}
				continue
			}
			sh.done = true
		}
	}
}

func (sh *shard) size() int {
	if sh.plan != nil {
		return len(sh.plan)
	}
	return sh.runs
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown node"
	}
	return s
}

func reasonText(r string) string {
	if r == "" || r == "None" {
		return ""
	}
	return " (" + r + ")"
}

// settle waits up to d for the shards' jobs to leave the queue's active
// states, recording their last state.
func (s *Slurm) settle(shards []*shard, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		jobs, err := s.queue(ctx)
		active := 0
		for _, sh := range shards {
			if sh.done {
				continue
			}
			if j, ok := jobs[sh.job]; ok && err == nil {
				sh.state, sh.reason = j.state, j.reason
				if j.node != "" {
					sh.node = j.node
				}
				if !terminalStates[j.state] {
					active++
					continue
				}
			}
			sh.done = true
		}
		if active == 0 || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.Poll):
		}
	}
}

// cancelAll cancels every job of the run still queued or running, then
// checks that none is left (deadline 60 s).
func (s *Slurm) cancelAll(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	active := func() []string {
		jobs, err := s.queue(ctx)
		if err != nil {
			return []string{"(the queue could not be read: " + err.Error() + ")"}
		}
		var ids []string
		for id, j := range jobs {
			if !terminalStates[j.state] {
				ids = append(ids, id+" "+j.state)
			}
		}
		return ids
	}
	if len(active()) == 0 {
		return nil
	}
	if _, err := s.Command(ctx, "scancel", "--name="+s.JobName()); err != nil {
		fmt.Fprintf(out, "slurm: scancel: %v\n", err)
	}
	for {
		left := active()
		if len(left) == 0 {
			fmt.Fprintf(out, "slurm: cancelled the run's remaining jobs (%s)\n", s.JobName())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jobs of run %s still in the queue after scancel: %s (cancel them: scancel --name=%s)",
				s.RunID, strings.Join(left, ", "), s.JobName())
		case <-time.After(time.Second):
		}
	}
}

// merge turns a finished shard into its tests' results.
func (s *Slurm) merge(o *testcases.Options, sh *shard, interrupted bool) []*testcases.Result {
	rel, _ := filepath.Rel(o.ResultsDir, sh.dir)
	sum, readErr := testcases.ReadSummary(filepath.Join(sh.dir, "results.json"))
	sh.summary = sum
	got := map[string]*testcases.Result{}
	if sum != nil {
		for _, r := range sum.Results {
			got[key(r)] = r
		}
	}
	// The job ended normally when kitrun test exited by itself (passing
	// or failing tests); otherwise its unfinished tests fail with the
	// job's state.
	normal := sh.state == "COMPLETED" || ((sh.state == "FAILED" || sh.state == "GONE") && sum != nil && !sum.Finished.IsZero() && !sum.Interrupted)
	why := fmt.Sprintf("shard %d/%d (Slurm job %s on %s) ended %s%s", sh.index, s.Shards, sh.job, orUnknown(sh.node), sh.state, reasonText(sh.reason))
	if len(sh.history) > 0 {
		why += "; earlier: " + strings.Join(sh.history, "; ")
	}
	if sum == nil {
		why += fmt.Sprintf("; no results (%v); job output: %s", readErr, filepath.Join(o.ResultsDir, "slurm"))
	}
	var out []*testcases.Result
	for _, p := range sh.plan {
		r, ok := got[key(p)]
		if !ok {
			r = p
			r.ResultsDir = ""
			if r.Status != testcases.StatusSkipped {
				r.Status, r.Message, r.Detail = testcases.StatusFailed, why+" before this test finished", why+" before this test finished"
				if interrupted {
					r.Status, r.Message = testcases.StatusSkipped, "interrupted"
				}
				if tail := consoleTail(filepath.Join(sh.dir, p.ResultsDir)); tail != "" {
					r.Detail += tail
					r.ResultsDir = filepath.Join(rel, p.ResultsDir)
				}
			}
		} else {
			if r.ResultsDir != "" {
				r.ResultsDir = filepath.Join(rel, r.ResultsDir)
			}
			if !normal && !interrupted && r.Status == testcases.StatusSkipped && r.Message == "interrupted" {
				r.Status, r.Message = testcases.StatusFailed, why+" before this test ran"
				if len(r.Attempts) > 0 {
					stage := r.Attempts[len(r.Attempts)-1].Stage
					if stage == "" {
						stage = "none"
					}
					r.Message = why + " while this test ran (stage reached: " + stage + ")"
				}
				r.Detail = strings.TrimSpace(r.Message + "\n" + r.Detail)
			}
		}
		if r.Node == "" {
			r.Node = sh.node
		}
		out = append(out, r)
	}
	return out
}

// consoleTail is the end of a test's console log (and the stage its
// events log reached), for a test its shard did not finish.
func consoleTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "console.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	text := ""
	if ev, err := os.ReadFile(filepath.Join(dir, "events.log")); err == nil {
		evl := strings.Split(strings.TrimSpace(string(ev)), "\n")
		text = "\nlast event: " + evl[len(evl)-1]
	}
	return text + "\n--- last console lines ---\n" + strings.Join(lines, "\n")
}

func printResult(w io.Writer, resultsDir string, r *testcases.Result) {
	on := ""
	if r.Node != "" {
		on = " on " + r.Node
	}
	name := r.Name + " [" + r.Arch + "]"
	switch r.Status {
	case testcases.StatusPassed:
		fmt.Fprintf(w, "PASS  %s%s (%s)\n", name, on, r.Duration)
	case testcases.StatusFlaky:
		fmt.Fprintf(w, "FLAKY %s%s (%s): %s\n", name, on, r.Duration, r.Message)
	case testcases.StatusSkipped:
		fmt.Fprintf(w, "SKIP  %s: %s\n", name, r.Message)
	default:
		word := "FAIL "
		if r.Status == testcases.StatusError {
			word = "ERROR"
		}
		fmt.Fprintf(w, "%s %s%s (%s)\n    %s\n", word, name, on, r.Duration, strings.ReplaceAll(strings.TrimRight(r.Detail, "\n"), "\n", "\n    "))
		if r.ResultsDir != "" {
			fmt.Fprintf(w, "    logs: %s\n", filepath.Join(resultsDir, r.ResultsDir))
		}
	}
}
