package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// FuzzReader feeds arbitrary bytes to the Reader. It must return, with
// either io.EOF at the trailer or an error wrapping ErrFormat or
// io.ErrUnexpectedEOF, as documented; and every entry it accepts that the
// Writer can encode must survive a write and a second read unchanged.
// Seeds: testdata/fuzz/FuzzReader.
//
//	go test ./boot/cpio -run '^$' -fuzz FuzzReader -fuzztime 10m -parallel 1
func FuzzReader(f *testing.F) {
	f.Add(writeTree(f, sample()))
	f.Add(writeTree(f, []Record{File("a", []byte("x"), 0644)}, PadTo(4)))
	f.Add([]byte("070701"))
	f.Add([]byte("07070100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog("Reader", len(data))()
		var kept []Record
		names := map[string]bool{}
		rd := NewReader(bytes.NewReader(data))
		for {
			r, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrFormat) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error wraps neither ErrFormat nor io.ErrUnexpectedEOF: %v", err)
				}
				if _, again := rd.Next(); again == nil || again.Error() != err.Error() {
					t.Fatalf("error not sticky: %v, then %v", err, again)
				}
				break
			}
			if len(r.Name)+1 > maxNameSize || len(r.Data) > len(data) {
				t.Fatalf("impossible record: name %d bytes, data %d bytes from %d input bytes", len(r.Name), len(r.Data), len(data))
			}
			// The Writer stores names without a leading "/" (CleanName).
			r.Name = CleanName(r.Name)
			if r.validate() == nil && !names[r.Name] {
				names[r.Name] = true
				kept = append(kept, r)
			}
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		for _, r := range kept {
			if err := w.WriteRecord(r); err != nil {
				t.Fatalf("writing back %q: %v", r.Name, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rd = NewReader(&out)
		for i := 0; ; i++ {
			r, err := rd.Next()
			if err == io.EOF {
				if i != len(kept) {
					t.Fatalf("read back %d entries, wrote %d", i, len(kept))
				}
				break
			}
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			k := kept[i]
			if r.Name != k.Name || r.Mode != k.Mode || r.UID != k.UID || r.GID != k.GID || r.MTime != k.MTime ||
				!bytes.Equal(r.Data, k.Data) || r.RDevMajor != k.RDevMajor || r.RDevMinor != k.RDevMinor {
				t.Fatalf("entry %d changed in a round trip:\n%+v\n%+v", i, k, r)
			}
		}
	})
}

// watchdog turns a hang into a crash, which the fuzzer records with the
// input that caused it: Go's fuzzer has no per-input timeout, and a hung
// worker only shows as a run that stops counting executions.
func watchdog(what string, size int) (stop func()) {
	t := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("%s did not return in 10 s on a %d-byte input", what, size)) })
	return func() { t.Stop() }
}
