// Package testcases is kitrun's test harness: directories of cases, each an
// image spec (spec.yml) and what its boot must show (test.yml), run on real
// VMs with filters, parallelism within a memory budget, retries, timeouts
// that name the stage reached, and reports (per-test logs, JUnit XML, JSON).
//
// The layout, test.yml and group.yml are documented in README.md (the test
// file reference) and in this package: see TestFile, Assertion and Group.
// Run is the library entry point; `kitrun test` is a thin command over it,
// and package vmtest offers the same machinery to a user's `go test`.
package testcases

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/logfile"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// Defaults of a run.
const (
	DefaultTimeout = 2 * time.Minute
	DefaultGrace   = 10 * time.Second
	// tailLines is how much of the console a failure report shows.
	tailLines = 20
)

// Options configure a run.
type Options struct {
	// Dir is a cases tree, a directory holding cases/, or one case.
	Dir string
	// Arches to run on (kitrun names or aliases); default the host's.
	Arches []string
	Labels LabelFilter
	Names  NameFilter
	// Parallel is how many tests run at once; default 1.
	Parallel int
	// MemBudgetMiB caps the sum of the running guests' memory; default
	// half the host's MemAvailable.
	MemBudgetMiB int
	// Timeout is the per-test timeout of tests that set none; default 2m.
	Timeout time.Duration
	// Retries is how often a failed test is run again; a test that passes
	// on a retry is flaky.
	Retries int
	// ResultsDir receives the logs and reports; default
	// out/test-results/<timestamp>.
	ResultsDir string
	// Launcher builds and boots; default a VMLauncher on the default backend.
	Launcher Launcher
	// Out receives a line per finished test and the closing line.
	Out io.Writer
	// Grace is how long the power-off at the end of a test may take.
	Grace time.Duration
	// Shard selects one part of the plan (see Shard); the zero value runs
	// it all.
	Shard Shard
	// Node names the machine the tests run on in the results (Result.Node);
	// default $SLURMD_NODENAME, else the hostname.
	Node string
}

// planned is one test of the run: a case on an arch.
type planned struct {
	c     *Case
	arch  arch.Arch
	res   *Result
	skip  string
	dir   string // results directory of the test
	index int    // position in the plan
	// saveErrs are the logs of its attempts that could not be written.
	saveErrs []error
}

type runner struct {
	o         Options
	multiArch bool
	summary   *Summary
	results   []*Result  // by plan index, nil until finished
	mu        sync.Mutex // guards summary, results, saveErrs and Out
	// saveErrs are the results that could not be written (a full disk):
	// each is said at once and makes Run fail.
	saveErrs []error
	said     map[string]bool
}

// Run discovers, selects and runs the tests under o.Dir. It returns an error
// only when the run could not happen at all (no such directory, bad
// options); failed tests are in the summary (see Summary.OK). Cancelling
// ctx stops the run: running tests are killed, the rest skipped.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.MemBudgetMiB <= 0 {
		o.MemBudgetMiB = DefaultMemBudget()
	}
	if o.Launcher == nil {
		o.Launcher = &VMLauncher{}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := o.Shard.Check(); err != nil {
		return nil, err
	}
	if o.Node == "" {
		o.Node = NodeName()
	}
	started := time.Now()
	if o.ResultsDir == "" {
		o.ResultsDir = filepath.Join("out", "test-results", started.Format("20060102-150405"))
	}
	arches, err := resolveArches(o.Arches)
	if err != nil {
		return nil, err
	}
	cases, err := Discover(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.ResultsDir, 0o755); err != nil {
		return nil, err
	}
	r := &runner{o: o, multiArch: len(arches) > 1,
		summary: &Summary{Schema: 1, Dir: o.Dir, ResultsDir: o.ResultsDir, Started: started}}
	plan := r.plan(cases, arches)
	r.results = make([]*Result, len(plan))
	if len(plan) == 0 {
		fmt.Fprintf(o.Out, "kitrun test: no test in %s matches the filters\n", o.Dir)
	} else {
		fmt.Fprintf(o.Out, "kitrun test: %d test(s) from %s%s, %d at a time within %d MiB; results in %s\n",
			len(plan), o.Dir, o.Shard.describe(), o.Parallel, o.MemBudgetMiB, o.ResultsDir)
	}
	r.execute(ctx, plan)

	s := r.summary
	s.Finished = time.Now()
	s.Duration = Seconds(s.Finished.Sub(started))
	s.Interrupted = ctx.Err() != nil
	s.count()
	r.mu.Lock()
	r.saveFailed(s.WriteJSON(filepath.Join(o.ResultsDir, "results.json")))
	r.saveFailed(WriteJUnit(filepath.Join(o.ResultsDir, "junit.xml"), s))
	r.printClosing()
	err = errors.Join(r.saveErrs...)
	r.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("some results could not be saved in %s:\n%w", o.ResultsDir, err)
	}
	return s, err
}

// saveFailed notes results that could not be written and says so at once;
// a file that fails again (the results.json checkpoint) is noted once.
// r.mu is held.
func (r *runner) saveFailed(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			r.saveFailed(e)
		}
		return
	}
	if r.said == nil {
		r.said = map[string]bool{}
	}
	what, _, _ := strings.Cut(err.Error(), ": ") // "writing PATH"
	if r.said[what] {
		return
	}
	r.said[what] = true
	r.saveErrs = append(r.saveErrs, err)
	fmt.Fprintf(r.o.Out, "kitrun test: results not saved: %v\n", err)
}

// DefaultMemBudget is half the host's MemAvailable in MiB (2048 when it
// cannot be read).
func DefaultMemBudget() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 2048
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			if kb, err := strconv.Atoi(fields[1]); err == nil {
				return max(kb/1024/2, 128)
			}
		}
	}
	return 2048
}

func resolveArches(names []string) ([]arch.Arch, error) {
	if len(names) == 0 {
		return []arch.Arch{arch.Host()}, nil
	}
	var out []arch.Arch
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			a, err := arch.Lookup(part)
			if err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(out, func(x arch.Arch) bool { return x.Name == a.Name }) {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// plan selects the tests of the run in discovery order.
func (r *runner) plan(cases []*Case, arches []arch.Arch) []*planned {
	var out []*planned
	inShard := r.o.Shard.selector(cases)
	for _, c := range cases {
		if !r.o.Names.Match(c.Name) || !inShard(c) {
			continue
		}
		for _, a := range arches {
			labels := []string{a.Name, "linux"}
			res := &Result{Name: c.Name, Group: c.Group, Arch: a.Name, Dir: c.Dir, Node: r.o.Node}
			p := &planned{c: c, arch: a, res: res, index: len(out)}
			if tf := c.Test; tf != nil {
				labels = append(slices.Clone(tf.Labels), labels...)
				// A malformed test file has no labels to filter on: it
				// stays in, to fail, rather than vanish.
				if !r.o.Labels.Match(labels) {
					continue
				}
				res.Summary = tf.Summary
				switch {
				case tf.Skip != "":
					p.skip = tf.Skip
				case len(tf.Arches) > 0 && !slices.Contains(tf.Arches, a.Name):
					p.skip = "not for " + a.Name + " (arches: " + strings.Join(tf.Arches, ", ") + ")"
				}
			}
			res.Labels = labels
			p.dir = filepath.Join(r.o.ResultsDir, filepath.FromSlash(c.Name))
			if r.multiArch {
				p.dir = filepath.Join(p.dir, a.Name)
			}
			res.ResultsDir, _ = filepath.Rel(r.o.ResultsDir, p.dir)
			if p.skip == "" {
				for _, g := range c.Groups {
					g.remaining++
				}
			}
			out = append(out, p)
		}
	}
	return out
}

// execute runs the plan: in order, at most Parallel at once, within the
// memory budget.
func (r *runner) execute(ctx context.Context, plan []*planned) {
	slots := make(chan struct{}, r.o.Parallel)
	mem := newBudget(r.o.MemBudgetMiB)
	var wg sync.WaitGroup
	for _, p := range plan {
		if p.skip != "" {
			p.res.Status, p.res.Message = StatusSkipped, p.skip
			r.finished(p)
			continue
		}
		need := 0
		if p.c.Test != nil {
			need = p.c.Test.MemoryMiB
		}
		if need > r.o.MemBudgetMiB {
			r.fail(p, StatusError, fmt.Sprintf("the guest needs %d MiB (mem:), more than the whole memory budget of %d MiB; raise --mem-budget", need, r.o.MemBudgetMiB))
			r.leaveGroups(context.Background(), p)
			r.finished(p)
			continue
		}
		gotSlot := false
		if ctx.Err() == nil {
			select {
			case slots <- struct{}{}:
				gotSlot = true
			case <-ctx.Done():
			}
		}
		if !gotSlot || !mem.acquire(ctx, need) {
			if gotSlot {
				<-slots
			}
			p.res.Status, p.res.Message = StatusSkipped, "interrupted"
			r.leaveGroups(context.Background(), p)
			r.finished(p)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { mem.release(need); <-slots }()
			r.runTest(ctx, p)
			r.leaveGroups(context.Background(), p)
			r.finished(p)
		}()
	}
	wg.Wait()
}

func (r *runner) leaveGroups(ctx context.Context, p *planned) {
	for i := len(p.c.Groups) - 1; i >= 0; i-- {
		if err := p.c.Groups[i].leave(ctx, r.o.ResultsDir); err != nil {
			r.mu.Lock()
			r.summary.GroupErrors = append(r.summary.GroupErrors, err.Error())
			fmt.Fprintf(r.o.Out, "GROUP %s\n", strings.TrimPrefix(indent(err.Error(), "    "), "    "))
			r.mu.Unlock()
		}
	}
}

func (r *runner) fail(p *planned, st Status, detail string) {
	p.res.Status = st
	p.res.Detail = detail
	p.res.Message = firstLine(detail)
}

// runTest runs every attempt of one test and settles its status.
func (r *runner) runTest(ctx context.Context, p *planned) {
	res, c := p.res, p.c
	res.Started = time.Now()
	defer func() { res.Duration = Seconds(time.Since(res.Started)) }()
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		r.fail(p, StatusError, err.Error())
		return
	}
	if c.ParseErr != nil {
		r.fail(p, StatusError, c.ParseErr.Error())
		return
	}
	for _, g := range c.Groups {
		if err := g.enter(ctx, r.o.ResultsDir); err != nil {
			r.fail(p, StatusError, err.Error())
			return
		}
	}
	s, err := spec.Parse(c.Spec)
	if err == nil {
		err = c.Test.CheckSpec(s)
	}
	if err != nil {
		r.fail(p, StatusError, err.Error())
		return
	}
	tf := c.Test
	number, flaky := 0, false
	for rep := 1; rep <= tf.Repeat; rep++ {
		passed := false
		for try := 0; try <= r.o.Retries; try++ {
			number++
			at := r.attempt(ctx, p, number, rep)
			res.Attempts = append(res.Attempts, at)
			res.ConsoleTail = at.consoleTail
			if at.Passed {
				passed, flaky = true, flaky || try > 0
				break
			}
			if at.errorKind || ctx.Err() != nil {
				break
			}
		}
		if !passed {
			last := res.Attempts[len(res.Attempts)-1]
			st := StatusFailed
			if last.errorKind {
				st = StatusError
			}
			detail := last.Error
			if n := len(res.Attempts); n > 1 {
				detail = fmt.Sprintf("attempt %d of %d (repeat %d of %d): %s", n, n, rep, tf.Repeat, detail)
			}
			if ctx.Err() != nil {
				res.Status, res.Message, res.Detail = StatusSkipped, "interrupted", detail
				return
			}
			r.fail(p, st, detail)
			return
		}
	}
	res.Status = StatusPassed
	if flaky {
		res.Status = StatusFlaky
		var failedAt []string
		for _, at := range res.Attempts {
			if !at.Passed {
				failedAt = append(failedAt, fmt.Sprintf("attempt %d: %s", at.Number, firstLine(at.Error)))
			}
		}
		res.Message = "passed on retry after " + strings.Join(failedAt, "; ")
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// attempt boots the test once and runs its assertions.
func (r *runner) attempt(ctx context.Context, p *planned, number, rep int) (at Attempt) {
	at = Attempt{Number: number, Repeat: rep, Console: "console.log", Events: "events.log"}
	if number > 1 {
		at.Console, at.Events = fmt.Sprintf("console.%d.log", number), fmt.Sprintf("events.%d.log", number)
	}
	start := time.Now()
	defer func() { at.Duration = Seconds(time.Since(start)) }()
	tf := p.c.Test
	cf, err := logfile.Create(filepath.Join(p.dir, at.Console))
	if err != nil {
		at.Error, at.errorKind = err.Error(), true
		return at
	}
	ef, err := logfile.Create(filepath.Join(p.dir, at.Events))
	if err != nil {
		cf.Close()
		at.Error, at.errorKind = err.Error(), true
		return at
	}
	// The logs are complete once the machine is gone (the attempt ends
	// it); a log that lost writes is reported with the results.
	defer func() {
		for _, l := range []*logfile.File{cf, ef} {
			if err := l.Close(); err != nil {
				p.saveErrs = append(p.saveErrs, err)
			}
		}
	}()
	rec := NewRecord(cf, ef)
	defer func() { at.consoleTail = rec.Tail(tailLines) }()

	timeout := cmpOr(tf.Timeout, r.o.Timeout)
	snapOK, coldWhy := tf.SnapshotOK()
	g, err := r.o.Launcher.Launch(ctx, LaunchRequest{
		Spec: p.c.Spec, Arch: p.arch, SSH: tf.SSH, Publish: tf.publishedPorts(),
		MemoryMiB: tf.MemoryMiB, Snapshot: snapOK, Console: rec, OnEvent: rec.OnEvent,
	})
	if err != nil {
		var be *BuildError
		if errors.As(err, &be) {
			at.Error, at.errorKind = "build: "+err.Error(), true
		} else {
			at.Error = "boot: " + err.Error()
		}
		return at
	}
	at.Snapshot = snapshotNote(g, coldWhy)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := &session{g: g, rec: rec, tf: tf}
	failed := false
	step := "boot"
	fail := func(msg string) {
		if !failed {
			at.Error = msg
		}
		failed = true
	}

	// The boot, up to all-ready or a failure the test expects.
	t0 := time.Now()
	boot := AssertionResult{Kind: "boot", Text: "the boot reaches all-ready", Implicit: true, Outcome: OutcomePassed}
	bootErr := g.WaitReady(tctx, timeout)
	if err := s.bootError(bootErr); err != nil {
		boot.Outcome, boot.Message = OutcomeFailed, err.Error()
		fail("boot failed: " + err.Error())
	} else if bootErr != nil {
		boot.Text = "the boot ends as expected"
		boot.Message = firstLine(bootErr.Error())
	}
	boot.Duration = Seconds(time.Since(t0))
	at.Assertions = append(at.Assertions, boot)

	for _, a := range tf.Expect {
		if a.Kind == KindConsoleNot || a.Kind == KindAllowConsole {
			continue // checked at the end
		}
		ar := AssertionResult{Kind: a.Kind, Text: a.Text, Pos: a.Pos.String(), Outcome: OutcomeNotRun}
		if !failed {
			step = a.Text
			t0 := time.Now()
			err := s.check(tctx, a)
			ar.Duration = Seconds(time.Since(t0))
			if err != nil {
				ar.Outcome, ar.Message = OutcomeFailed, err.Error()
				fail(fmt.Sprintf("%s: %s: %s", a.Pos, a.Text, err))
			} else {
				ar.Outcome = OutcomePassed
			}
		}
		at.Assertions = append(at.Assertions, ar)
	}

	// Teardown.
	at.Stage = g.Stage()
	// A boot that did not reach all-ready by the deadline is the test
	// timing out too (WaitReady's timer may fire a hair before tctx's).
	var bootTimeout *vm.TimeoutError
	timedOut := ctx.Err() == nil && (tctx.Err() != nil || errors.As(bootErr, &bootTimeout))
	exited := false
	select {
	case <-g.Exited():
		exited = true
	default:
	}
	strayExit := func() {
		if !s.poweredOff && !failed {
			fail(fmt.Sprintf("the machine exited on its own (%s) at stage %s; expect `halts_itself: true` or `reboots_itself: true` if it should", exitDesc(g.ExitErr()), at.Stage))
		}
	}
	switch {
	case exited:
		strayExit()
	case timedOut || ctx.Err() != nil:
		g.Kill()
	default:
		sctx, cancel := context.WithTimeout(context.Background(), r.o.Grace+30*time.Second)
		err := g.Shutdown(sctx, r.o.Grace)
		cancel()
		// The guest may have halted just as the host asked.
		if g.StoppedItself() {
			strayExit()
		} else if tf.Implicit {
			ar := AssertionResult{Kind: "implicit", Text: "the guest powers off cleanly at the end", Implicit: true, Outcome: OutcomePassed}
			if err == nil {
				err = g.ExitErr()
			}
			if err != nil {
				ar.Outcome, ar.Message = OutcomeFailed, err.Error()
				fail("power-off at the end of the test was not clean: " + err.Error())
			}
			at.Assertions = append(at.Assertions, ar)
		}
	}
	if timedOut {
		msg := fmt.Sprintf("timed out after %s during %s (stage reached: %s); the VM was killed", timeout, step, at.Stage)
		if failed && at.Error != "" {
			msg += "\n" + at.Error
		}
		at.Error, failed = msg+consoleBlock(rec.Tail(tailLines)), true
	}
	for _, ar := range s.finish() {
		if ar.Outcome == OutcomeFailed {
			prefix := ar.Text
			if ar.Pos != "" {
				prefix = ar.Pos + ": " + ar.Text
			}
			fail(prefix + ": " + ar.Message)
		}
		at.Assertions = append(at.Assertions, ar)
	}
	if failed && !timedOut && !strings.Contains(at.Error, "last console lines") {
		at.Error += consoleBlock(rec.Tail(tailLines))
	}
	at.Passed = !failed
	return at
}

func consoleBlock(lines []string) string {
	if len(lines) == 0 {
		return "\n(the console was empty)"
	}
	return "\n--- last console lines ---\n" + strings.Join(lines, "\n")
}

// finished records a test's result, writes its files and prints its line.
func (r *runner) finished(p *planned) {
	res := p.res
	var saveErr error
	if res.Status == StatusSkipped && len(res.Attempts) == 0 {
		res.ResultsDir = "" // nothing ran, nothing written
	} else {
		saveErr = writeTestFiles(p.dir, res)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Results are listed in plan order whatever the finishing order.
	r.results[p.index] = res
	r.summary.Results = r.summary.Results[:0]
	for _, x := range r.results {
		if x != nil {
			r.summary.Results = append(r.summary.Results, x)
		}
	}
	r.printResult(res)
	for _, err := range append(p.saveErrs, saveErr) {
		r.saveFailed(err)
	}
	// A checkpoint, so that a killed run keeps what it measured.
	r.summary.count()
	r.saveFailed(r.summary.WriteJSON(filepath.Join(r.o.ResultsDir, "results.json")))
}

func (r *runner) printResult(res *Result) {
	name := res.DisplayName(r.multiArch)
	w := r.o.Out
	switch res.Status {
	case StatusPassed:
		fmt.Fprintf(w, "PASS  %s (%s)\n", name, res.Duration)
	case StatusFlaky:
		fmt.Fprintf(w, "FLAKY %s (%s): %s\n", name, res.Duration, res.Message)
	case StatusSkipped:
		fmt.Fprintf(w, "SKIP  %s: %s\n", name, res.Message)
	default:
		word := "FAIL "
		if res.Status == StatusError {
			word = "ERROR"
		}
		fmt.Fprintf(w, "%s %s (%s)\n%s\n", word, name, res.Duration, indent(res.Detail, "    "))
		if res.ResultsDir != "" && len(res.Attempts) > 0 {
			fmt.Fprintf(w, "    logs: %s\n", filepath.Join(r.o.ResultsDir, res.ResultsDir))
		}
	}
}

func (r *runner) printClosing() {
	s := r.summary
	w := r.o.Out
	var flaky []string
	for _, res := range s.Results {
		if res.Status == StatusFlaky {
			flaky = append(flaky, res.DisplayName(r.multiArch))
		}
	}
	if len(flaky) > 0 {
		fmt.Fprintf(w, "flaky (passed on retry, counted as passed): %s\n", strings.Join(flaky, ", "))
	}
	for _, e := range s.GroupErrors {
		fmt.Fprintf(w, "group error: %s\n", firstLine(e))
	}
	if s.Interrupted {
		fmt.Fprintln(w, "interrupted: tests not finished are counted as skipped")
	}
	fmt.Fprintf(w, "results: %s\n", s.ResultsDir)
	fmt.Fprintln(w, s.ClosingLine())
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// budget is a memory semaphore in MiB, granted in request order.
type budget struct {
	mu    sync.Mutex
	total int
	used  int
	freed chan struct{}
}

func newBudget(total int) *budget { return &budget{total: total, freed: make(chan struct{})} }

func (b *budget) acquire(ctx context.Context, n int) bool {
	for {
		b.mu.Lock()
		if b.used+n <= b.total {
			b.used += n
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *budget) release(n int) {
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// snapshotNote says how an attempt's machine started, for its results:
// "restored", "built, restored", or "cold: WHY" where a snapshot was not
// used ("" on launchers without snapshots).
func snapshotNote(g Guest, coldWhy string) string {
	su, ok := g.(interface{ SnapshotUse() vm.SnapshotUse })
	if !ok {
		return ""
	}
	u := su.SnapshotUse()
	switch {
	case u.Restored && u.Built:
		return "built, restored"
	case u.Restored:
		return "restored"
	case u.Cold != "":
		return "cold: " + u.Cold
	case coldWhy != "":
		return "cold: " + coldWhy
	}
	return ""
}
