package cloud

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// TestPollStream: each chunk arrives once, in order, a drop is marked
// where it happened, failures are retried, and Finish ends the stream
// after a last read.
func TestPollStream(t *testing.T) {
	var mu sync.Mutex
	chunks := []struct {
		b    string
		lost bool
		err  error
	}{{b: "a"}, {b: ""}, {err: errors.New("busy")}, {b: "b", lost: true}, {b: "c"}}
	i := 0
	s := PollStream(func(ctx context.Context) ([]byte, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if i >= len(chunks) {
			return nil, false, nil
		}
		c := chunks[i]
		i++
		return []byte(c.b), c.lost, c.err
	}, PollOptions{Interval: time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := i
		mu.Unlock()
		if n >= len(chunks) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a" + StreamGapMarker + "bc"; string(got) != want {
		t.Errorf("stream %q, want %q", got, want)
	}
}
