//go:build unix

package flock

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func mustTry(t *testing.T, path string, mode Mode, want bool) *Lock {
	t.Helper()
	l, ok, err := TryLock(path, mode, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if ok != want {
		t.Fatalf("TryLock(%s) ok=%v, want %v", mode, ok, want)
	}
	return l
}

func TestModesConflict(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	ex := mustTry(t, p, Exclusive, true)
	mustTry(t, p, Exclusive, false)
	mustTry(t, p, Shared, false)
	ex.Unlock()
	ex.Unlock() // twice is fine

	sh1 := mustTry(t, p, Shared, true)
	sh2 := mustTry(t, p, Shared, true)
	mustTry(t, p, Exclusive, false)
	sh1.Unlock()
	mustTry(t, p, Exclusive, false)
	sh2.Unlock()
	mustTry(t, p, Exclusive, true).Unlock()
}

// A holder that removes the lock file (it removed what the file guarded)
// must not leave a waiter holding a lock on a file nobody else can open.
func TestWaiterFollowsARemovedLockFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	holder := mustTry(t, p, Exclusive, true)
	got := make(chan *Lock)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := Wait(ctx, p, Shared, 0o644)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(50 * time.Millisecond) // the waiter has opened the old file
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	holder.Unlock()
	l := <-got
	if l == nil {
		t.Fatal("no lock")
	}
	defer l.Unlock()
	if !samePath(l.File(), p) {
		t.Fatal("the waiter holds the removed file's lock")
	}
	// And its lock is visible to others through the path.
	mustTry(t, p, Exclusive, false)
}

func TestWaitEndsWithContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	defer mustTry(t, p, Exclusive, true).Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Wait(ctx, p, Exclusive, 0o644); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingDirectory(t *testing.T) {
	_, _, err := TryLock(filepath.Join(t.TempDir(), "gone", "x.lock"), Exclusive, 0o644)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

// A lock dies with its holder, however the holder dies.
func TestKilledHolderReleases(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "FLOCK_TEST_HOLD="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// The child says "held" once it holds the lock.
	buf := make([]byte, 4)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "held" {
		t.Fatalf("child: %q %v", buf, err)
	}
	mustTry(t, p, Shared, false)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Wait(ctx, p, Exclusive, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

// TestHelperHoldLock is the child of TestKilledHolderReleases.
func TestHelperHoldLock(t *testing.T) {
	p := os.Getenv("FLOCK_TEST_HOLD")
	if p == "" {
		t.Skip("helper process only")
	}
	mustTry(t, p, Exclusive, true)
	os.Stdout.WriteString("held")
	time.Sleep(time.Minute)
}
