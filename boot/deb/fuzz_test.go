package deb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzLimits keep one execution small: at most 1 MiB unpacked, 1,000
// entries, 8 MiB decoder windows (the xz decoder's own minimum).
var fuzzLimits = limits{data: 1 << 20, entries: 1000, window: 8 << 20}

// FuzzExtract feeds arbitrary bytes to the package reader as a .deb. It
// must return, and leave nothing but regular files and directories, all
// inside the extraction directory. Seeds: testdata/fuzz/FuzzExtract.
//
//	go test ./boot/deb -run '^$' -fuzz FuzzExtract -fuzztime 10m -parallel 1
func FuzzExtract(f *testing.F) {
	data := tarBytes(dir("./"), dir("./usr/"), file("./usr/a", "alpha"), symlink("./usr/b", "a"))
	f.Add(debBytes(member{name: "data.tar", data: data}))
	f.Add(debBytes(member{name: "data.tar.gz", data: gzBytes(data)}))
	f.Add(debBytes(member{name: "data.tar.xz", data: xzBytes(data)}))
	f.Add(debBytes(member{name: "data.tar.zst", data: zstBytes(data)}))
	f.Fuzz(func(t *testing.T, pkg []byte) {
		defer watchdog("extract", len(pkg))()
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		extract(context.Background(), bytes.NewReader(pkg), int64(len(pkg)), out, func(string) bool { return true }, fuzzLimits)
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Fatalf("%d entries beside the extraction directory", len(ents))
		}
		tree(t, out)
	})
}

// watchdog turns a hang into a crash, which the fuzzer records with the
// input that caused it: Go's fuzzer has no per-input timeout, and a hung
// worker only shows as a run that stops counting executions.
func watchdog(what string, size int) (stop func()) {
	t := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("%s did not return in 10 s on a %d-byte input", what, size)) })
	return func() { t.Stop() }
}
