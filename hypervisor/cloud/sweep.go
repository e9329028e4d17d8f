package cloud

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/hypervisor"
)

// Resource is something a cloud backend created and tagged.
type Resource struct {
	// Kind is the platform's name for it ("instance", "image",
	// "snapshot", "object", "security-group").
	Kind string
	ID   string
	Tags map[string]string
	// State is the platform's state of it, where it has one.
	State string
}

// String names the resource for a report.
func (r Resource) String() string {
	s := r.Kind + " " + r.ID
	if n := r.Tags[TagName]; n != "" {
		s += " (" + n + ")"
	}
	return s
}

// SweepOptions say what a sweep removes.
type SweepOptions struct {
	// OlderThan: also remove what was created longer ago than this,
	// expired or not (0: only what has expired).
	OlderThan time.Duration
	// Run: only this run's resources (empty: every run's).
	Run string
	// DryRun lists what would be removed without removing it.
	DryRun bool
	// Now is the sweep's time (time.Now when zero).
	Now time.Time
}

// Due says whether r is to be removed, and why (or why not).
func (o SweepOptions) Due(r Resource) (bool, string) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if r.Tags[TagRun] == "" {
		return false, "not kitrun's (no " + TagRun + " tag)"
	}
	if o.Run != "" && r.Tags[TagRun] != o.Run {
		return false, "another run's"
	}
	if exp, err := time.Parse(time.RFC3339, r.Tags[TagExpires]); err == nil && !now.Before(exp) {
		return true, "expired at " + r.Tags[TagExpires]
	}
	created, err := time.Parse(time.RFC3339, r.Tags[TagCreated])
	if err != nil {
		// Tagged by kitrun but without a creation time: a resource whose
		// tagging was cut short. Old enough once anything is.
		return o.OlderThan > 0, "no " + TagCreated + " tag"
	}
	if o.OlderThan > 0 && now.Sub(created) >= o.OlderThan {
		return true, fmt.Sprintf("created %s ago", now.Sub(created).Round(time.Second))
	}
	return false, "expires at " + r.Tags[TagExpires]
}

// SweepReport is what a sweep found and did.
type SweepReport struct {
	Removed []Resource
	Kept    []Resource
	Failed  []SweepFailure
}

// SweepFailure is a resource that could not be removed.
type SweepFailure struct {
	Resource Resource
	Err      error
}

// Err is nil when everything due was removed.
func (r *SweepReport) Err() error {
	if len(r.Failed) == 0 {
		return nil
	}
	var msgs []string
	for _, f := range r.Failed {
		msgs = append(msgs, fmt.Sprintf("%s: %v", f.Resource, f.Err))
	}
	return fmt.Errorf("sweep: %d resource(s) not removed: %s", len(r.Failed), strings.Join(msgs, "; "))
}

// Sweeper removes a cloud backend's tagged leftovers.
type Sweeper interface {
	Sweep(ctx context.Context, o SweepOptions) (*SweepReport, error)
}

var (
	sweepMu  sync.Mutex
	sweepers = map[string]func(hypervisor.Options) (Sweeper, error){}
)

// RegisterSweeper makes a backend's sweeper available by the backend's
// name; cloud backends call it from init.
func RegisterSweeper(name string, f func(hypervisor.Options) (Sweeper, error)) {
	sweepMu.Lock()
	defer sweepMu.Unlock()
	if _, dup := sweepers[name]; dup {
		panic("cloud: sweeper registered twice: " + name)
	}
	sweepers[name] = f
}

// Sweepers lists the backends that have a sweeper, sorted.
func Sweepers() []string {
	sweepMu.Lock()
	defer sweepMu.Unlock()
	var names []string
	for n := range sweepers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// OpenSweeper makes the named backend's sweeper with the backend's
// options (region, endpoints).
func OpenSweeper(name string, opts hypervisor.Options) (Sweeper, error) {
	sweepMu.Lock()
	f, ok := sweepers[name]
	sweepMu.Unlock()
	if !ok {
		valid := Sweepers()
		if len(valid) == 0 {
			return nil, fmt.Errorf("backend %q has nothing to sweep; no cloud backend is built into this kitrun", name)
		}
		return nil, fmt.Errorf("backend %q has nothing to sweep; cloud backends: %s", name, strings.Join(valid, ", "))
	}
	return f(opts)
}
