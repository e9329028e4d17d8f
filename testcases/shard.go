package testcases

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Shard is part Index (1-based) of Count of a run's plan, for spreading one
// run over several machines (`kitrun test --shard i/N`, the Slurm
// executor). The split is deterministic: every shard discovers the same
// cases and takes every Count-th unit, a unit being a case or, for cases
// inside a group.yml directory, the whole outermost group (its setup and
// teardown then run once, in one shard). Every arch of a case goes to the
// same shard. The zero Shard is the whole plan.
type Shard struct {
	Index, Count int
}

// ParseShard parses "i/N" (1 <= i <= N).
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want i/N, e.g. 1/4", s)
	}
	sh := Shard{Index: i, Count: n}
	return sh, sh.Check()
}

// Check says whether the shard is the zero value or a valid i/N.
func (s Shard) Check() error {
	if s == (Shard{}) {
		return nil
	}
	if s.Count < 1 || s.Index < 1 || s.Index > s.Count {
		return fmt.Errorf("shard %d/%d: want 1 <= i <= N", s.Index, s.Count)
	}
	return nil
}

func (s Shard) String() string {
	if s == (Shard{}) {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

func (s Shard) describe() string {
	if s == (Shard{}) || s.Count == 1 {
		return ""
	}
	return " (shard " + s.String() + ")"
}

// shardUnit is the unit a case is sharded with.
func shardUnit(c *Case) string {
	if len(c.Groups) > 0 {
		return "group:" + c.Groups[0].Dir
	}
	return "case:" + c.Dir
}

// selector returns whether a case is in the shard; units are numbered in
// discovery order, before any filter, so that every shard agrees.
func (s Shard) selector(cases []*Case) func(*Case) bool {
	if s == (Shard{}) || s.Count == 1 {
		return func(*Case) bool { return true }
	}
	units := map[string]int{}
	for _, c := range cases {
		if _, ok := units[shardUnit(c)]; !ok {
			units[shardUnit(c)] = len(units)
		}
	}
	return func(c *Case) bool { return units[shardUnit(c)]%s.Count == s.Index-1 }
}

// NodeName is the name of the machine tests run on: $SLURMD_NODENAME inside
// a Slurm job, else the hostname.
func NodeName() string {
	if n := os.Getenv("SLURMD_NODENAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// Plan returns the tests a run with o would run, in plan order, without
// running anything: each Result has the test's identity (name, group, arch,
// dir, labels), its results directory relative to o.ResultsDir, and for a
// test that would be skipped, StatusSkipped and the reason. An executor
// that runs shards elsewhere uses it to know what each shard owes.
func Plan(o Options) ([]*Result, error) {
	if err := o.Shard.Check(); err != nil {
		return nil, err
	}
	arches, err := resolveArches(o.Arches)
	if err != nil {
		return nil, err
	}
	cases, err := Discover(o.Dir)
	if err != nil {
		return nil, err
	}
	if o.ResultsDir == "" {
		o.ResultsDir = "."
	}
	r := &runner{o: o, multiArch: len(arches) > 1}
	var out []*Result
	for _, p := range r.plan(cases, arches) {
		if p.skip != "" {
			p.res.Status, p.res.Message = StatusSkipped, p.skip
		}
		out = append(out, p.res)
	}
	return out, nil
}

// Recount sets the summary's counts from its results.
func (s *Summary) Recount() { s.count() }

// ParseShardFlag is ParseShard where "" is the whole plan.
func ParseShardFlag(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	return ParseShard(s)
}
