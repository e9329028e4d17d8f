package cloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

// window is a console as a cloud keeps it: everything written, of which a
// snapshot shows the last size bytes.
type window struct {
	mu   sync.Mutex
	all  []byte
	size int
}

func (w *window) write(s string) {
	w.mu.Lock()
	w.all = append(w.all, s...)
	w.mu.Unlock()
}

func (w *window) snap() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.all) > w.size {
		return append([]byte(nil), w.all[len(w.all)-w.size:]...)
	}
	return append([]byte(nil), w.all...)
}

func TestDifferGrowRollAndRepeat(t *testing.T) {
	var d Differ
	steps := []struct{ snap, fresh string }{
		{"", ""},
		{"abc", "abc"},
		{"abc", ""},       // unchanged
		{"abcdef", "def"}, // grew
		{"cdefgh", "gh"},  // rolled by 2, grew by 2
		{"efghij", "ij"},
		{"ghij", ""}, // trimmed: a suffix of the last is nothing new
		{"ijklmn", "klmn"},
	}
	for i, s := range steps {
		fresh, lost := d.Next([]byte(s.snap))
		if string(fresh) != s.fresh || lost {
			t.Errorf("step %d: snapshot %q gave %q (lost %v), want %q", i, s.snap, fresh, lost, s.fresh)
		}
	}
	// No overlap at all: everything is new, and the gap is reported.
	fresh, lost := d.Next([]byte("uvwxyz"))
	if string(fresh) != "uvwxyz" || !lost {
		t.Errorf("disjoint window: %q lost=%v", fresh, lost)
	}
}

// TestDifferRandomStream: a guest writing random chunks under a rolling
// window, polled at random moments, gives back exactly what it wrote as
// long as no two polls are a window apart, and never duplicates a byte.
func TestDifferRandomStream(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 200; trial++ {
		w := &window{size: 64 + rng.Intn(200)}
		var d Differ
		var got []byte
		line := 0
		for step := 0; step < 100; step++ {
			// Less than a window between two polls; lines carry a
			// counter, as time stamps do.
			budget := rng.Intn(w.size)
			for budget > 0 {
				s := fmt.Sprintf("[%5d] %s\n", line, strings.Repeat("x", rng.Intn(20)))
				line++
				if len(s) > budget {
					break
				}
				budget -= len(s)
				w.write(s)
			}
			fresh, lost := d.Next(w.snap())
			if lost {
				t.Fatalf("trial %d: lost output with less than a window between polls", trial)
			}
			got = append(got, fresh...)
		}
		if !bytes.Equal(got, w.all) {
			t.Fatalf("trial %d (window %d): stream differs from what was written\n got %q\nwant %q", trial, w.size, got, w.all)
		}
	}
}

func TestDifferLostOutput(t *testing.T) {
	w := &window{size: 32}
	var d Differ
	w.write("[1] first line\n")
	d.Next(w.snap())
	for i := 2; i < 10; i++ {
		w.write(fmt.Sprintf("[%d] more output\n", i))
	}
	fresh, lost := d.Next(w.snap())
	if !lost || !bytes.Equal(fresh, w.snap()) {
		t.Errorf("got %q lost=%v", fresh, lost)
	}
}

func TestOverlapWorstCase(t *testing.T) {
	// 64 KiB of one byte rolled by one: must be linear, not quadratic.
	prev := bytes.Repeat([]byte{'a'}, 64<<10)
	cur := append(bytes.Repeat([]byte{'a'}, 64<<10-1), 'b')
	start := time.Now()
	if n := overlap(prev, cur); n != 64<<10-1 {
		t.Errorf("overlap = %d", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("overlap of 64 KiB windows took %s", d)
	}
}

func TestConsoleStream(t *testing.T) {
	w := &window{size: 64}
	var fails int
	var mu sync.Mutex
	firsts := 0
	snap := func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		fails++
		if fails%5 == 0 {
			return nil, errors.New("throttled")
		}
		return w.snap(), nil
	}
	var errs int
	s := PollConsole(snap, PollOptions{Interval: 2 * time.Millisecond,
		OnFirstOutput: func() { firsts++ }, OnError: func(error) { errs++ }})
	var got bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&got, s); close(done) }()
	for i := 0; i < 50; i++ {
		w.write(fmt.Sprintf("line %d\n", i))
		time.Sleep(3 * time.Millisecond)
	}
	w.write("last words\n")
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("a snapshot console must refuse input")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no EOF after Finish")
	}
	if firsts != 1 || errs == 0 {
		t.Errorf("first-output callbacks %d, errors %d", firsts, errs)
	}
	out := got.String()
	if !strings.HasSuffix(out, "last words\n") {
		t.Errorf("the last snapshot was not read: %q", out)
	}
	// Every line at most once, in order.
	prev := -1
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "line %d", &n); err == nil {
			if n <= prev {
				t.Errorf("line %d after %d", n, prev)
			}
			prev = n
		}
	}
}

func TestConsoleStreamSaysWhenSnapshotsFail(t *testing.T) {
	s := PollConsole(func(ctx context.Context) ([]byte, error) {
		return nil, errors.New("InvalidParameter: latest output is not supported")
	}, PollOptions{Interval: time.Millisecond})
	buf := make([]byte, 512)
	n, err := s.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "not supported") {
		t.Errorf("got %q, %v", buf[:n], err)
	}
	s.Close()
}
