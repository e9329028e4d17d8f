package cloud

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tags := func(created, expires time.Duration) map[string]string {
		return map[string]string{TagRun: "r1",
			TagCreated: now.Add(created).Format(time.RFC3339), TagExpires: now.Add(expires).Format(time.RFC3339)}
	}
	cases := []struct {
		name string
		r    Resource
		o    SweepOptions
		due  bool
	}{
		{"expired", Resource{Tags: tags(-3*time.Hour, -time.Minute)}, SweepOptions{}, true},
		{"live", Resource{Tags: tags(-time.Hour, time.Hour)}, SweepOptions{}, false},
		{"older than", Resource{Tags: tags(-3*time.Hour, time.Hour)}, SweepOptions{OlderThan: 2 * time.Hour}, true},
		{"young", Resource{Tags: tags(-time.Hour, time.Hour)}, SweepOptions{OlderThan: 2 * time.Hour}, false},
		{"not ours", Resource{Tags: map[string]string{"Name": "x"}}, SweepOptions{OlderThan: time.Nanosecond}, false},
		{"other run", Resource{Tags: tags(-3*time.Hour, -time.Minute)}, SweepOptions{Run: "r2"}, false},
		{"untimed", Resource{Tags: map[string]string{TagRun: "r1"}}, SweepOptions{OlderThan: time.Hour}, true},
	}
	for _, c := range cases {
		c.o.Now = now
		if due, why := c.o.Due(c.r); due != c.due {
			t.Errorf("%s: due = %v (%s)", c.name, due, why)
		}
	}
}

type store struct {
	mu       sync.Mutex
	images   map[string]string
	uploads  atomic.Int32
	failNext bool
}

func (s *store) Key() string { return "test" }
func (s *store) Find(ctx context.Context, d string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.images[d]
	return id, ok, nil
}
func (s *store) Upload(ctx context.Context, d string) (string, error) {
	s.uploads.Add(1)
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext {
		s.failNext = false
		return "", errors.New("upload cut")
	}
	s.images[d] = "img-" + d
	return s.images[d], nil
}

func TestEnsureImageOncePerDigest(t *testing.T) {
	s := &store{images: map[string]string{}, failNext: true}
	if _, _, err := EnsureImage(context.Background(), s, "d1"); err == nil {
		t.Fatal("a failed upload must fail")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, _, err := EnsureImage(context.Background(), s, "d1"); err != nil || id != "img-d1" {
				t.Errorf("EnsureImage = %q, %v", id, err)
			}
		}()
	}
	wg.Wait()
	if n := s.uploads.Load(); n != 2 {
		t.Errorf("%d uploads, want 2 (one failed, one shared by 8 callers)", n)
	}
	if _, reused, _ := EnsureImage(context.Background(), s, "d1"); !reused {
		t.Error("a later call must find the image")
	}
}
