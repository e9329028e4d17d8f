package testcases

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// idleGuest is a running machine that does nothing: enough for the
// assertions that only watch the record.
type idleGuest struct {
	Guest
	exited chan struct{}
}

func (g *idleGuest) Exited() <-chan struct{} { return g.exited }
func (g *idleGuest) Stage() string           { return "all-ready" }
func (g *idleGuest) ExitErr() error          { return nil }

func consoleLine(i int) string {
	return fmt.Sprintf("[%5d.%06d] some kernel or service line number %d of the boot\r\n", i/1000, i%1000, i)
}

// TestConsoleWaitMatchesEachLineOnce: a wait for a console line looks at
// each line once, however many writes the console arrives in; and it finds
// a line that is still unfinished, and one split across writes.
func TestConsoleWaitMatchesEachLineOnce(t *testing.T) {
	rec := NewRecord(io.Discard, io.Discard)
	const n = 20000
	looked := 0
	handshake := make(chan int)
	done := make(chan error, 1)
	go func() {
		done <- rec.Wait(context.Background(), nil, func(u Update) (bool, error) {
			looked += len(u.Lines)
			if slices.Contains(u.Lines, "the end") {
				return true, nil
			}
			handshake <- u.FirstLine + len(u.Lines) - 1
			return false, nil
		})
	}()
	// In lockstep: the waiter looks after every single line, the worst
	// case for a wait that rescans.
	if got := <-handshake; got != 0 {
		t.Fatalf("first look saw %d lines", got)
	}
	for i := range n - 1 {
		io.WriteString(rec, consoleLine(i))
		if got := <-handshake; got != i+1 {
			t.Fatalf("after line %d the waiter had seen %d", i+1, got)
		}
	}
	io.WriteString(rec, "the end\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if looked != n {
		t.Fatalf("the wait looked at %d lines for a console of %d", looked, n)
	}

	// The session's console assertion: an unfinished line, then one that
	// comes in pieces.
	s := &session{g: &idleGuest{exited: make(chan struct{})}, rec: rec, tf: &TestFile{}}
	for _, tc := range []struct{ pattern, write string }{
		{`^login: $`, "login: "},
		{`^split across writes$`, "\nsplit ac|ross wri|tes\n"},
	} {
		errc := make(chan error, 1)
		go func() {
			errc <- s.check(context.Background(), Assertion{Kind: KindConsole, Pattern: regexp.MustCompile(tc.pattern), Timeout: 10 * time.Second})
		}()
		for _, piece := range strings.Split(tc.write, "|") {
			time.Sleep(5 * time.Millisecond)
			io.WriteString(rec, piece)
		}
		if err := <-errc; err != nil {
			t.Errorf("/%s/: %v", tc.pattern, err)
		}
	}
}

// BenchmarkConsoleWait is the cost of waiting for a console line while the
// console grows to n lines, the waiter looking after every line (the worst
// case; see TestConsoleWaitMatchesEachLineOnce): linear in n, so ns/line
// stays flat as n grows.
func BenchmarkConsoleWait(b *testing.B) {
	re := regexp.MustCompile(`^the end$`)
	for _, n := range []int{5000, 10000, 20000} {
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			lines := make([]string, n-1)
			for i := range lines {
				lines[i] = consoleLine(i)
			}
			for range b.N {
				rec := NewRecord(io.Discard, io.Discard)
				handshake := make(chan struct{})
				done := make(chan error, 1)
				go func() {
					done <- rec.Wait(context.Background(), nil, func(u Update) (bool, error) {
						// What the console assertion does (check.go).
						if slices.ContainsFunc(u.Lines, re.MatchString) || (u.Partial != "" && re.MatchString(u.Partial)) {
							return true, nil
						}
						handshake <- struct{}{}
						return false, nil
					})
				}()
				<-handshake
				for _, l := range lines {
					io.WriteString(rec, l)
					<-handshake
				}
				io.WriteString(rec, "the end\n")
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/line")
		})
	}
}

func TestTail(t *testing.T) {
	rec := NewRecord(nil, nil)
	if got := rec.Tail(3); len(got) != 0 {
		t.Fatalf("empty console: %q", got)
	}
	io.WriteString(rec, "a\nb\nc\nd")
	for n, want := range map[int]string{0: "", 1: "d", 2: "c d", 4: "a b c d", 9: "a b c d"} {
		if got := strings.Join(rec.Tail(n), " "); got != want {
			t.Errorf("Tail(%d) = %q, want %q", n, got, want)
		}
	}
}

// A guest writing a long line in small pieces, never ending it, does not make
// a wait rescan the line on every write.
func TestLongUnfinishedLineIsNotRescanned(t *testing.T) {
	rec := NewRecord(nil, nil)
	scanned := 0
	handshake := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- rec.Wait(context.Background(), nil, func(u Update) (bool, error) {
			scanned += len(u.Partial)
			for _, l := range u.Lines {
				scanned += len(l)
				if strings.HasSuffix(l, "end") {
					return true, nil
				}
			}
			handshake <- struct{}{}
			return false, nil
		})
	}()
	<-handshake
	const pieces = 10000
	for range pieces {
		io.WriteString(rec, "0123456789")
		<-handshake
	}
	io.WriteString(rec, "end\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Each prefix up to maxPartial, then the whole line once.
	limit := maxPartial*(maxPartial/10+1)/2 + pieces*10 + 3
	if scanned > limit {
		t.Fatalf("the wait scanned %d bytes for a line of %d", scanned, pieces*10+3)
	}
}
