package logfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestWriteAndClose(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	l, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("one\n"))
	l.Write([]byte("two\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one\ntwo\n" {
		t.Fatalf("log holds %q", b)
	}
	if _, err := l.Write([]byte("late")); err == nil {
		t.Fatal("a write after Close succeeded")
	}
}

// A full disk: /dev/full fails every write with ENOSPC. The error names the
// log, sticks, and comes back from Close.
func TestFullDisk(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/dev/full is Linux's")
	}
	l, err := Create("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write([]byte("lost\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write: %v, want ENOSPC", err)
	}
	if _, err := l.Write([]byte("also lost\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second write: %v", err)
	}
	err = l.Close()
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "/dev/full") {
		t.Fatalf("Close = %v, want the first write's ENOSPC naming the log", err)
	}
}

func TestCreateInMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gone", "console.log")
	if _, err := Create(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v", err)
	}
}
