package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary bytes to the spec parser. Whatever the input,
// the parser returns (it does not panic, recurse without end or blow up
// memory), and a rejection is an *Errors whose every entry has a position
// in the file and a message. Seeds: testdata/fuzz/FuzzParse.
//
//	go test ./boot/spec -run '^$' -fuzz FuzzParse -fuzztime 10m -parallel 1
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\nkernel: {package: linux-image-cloud}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog("ParseBytes", len(data))()
		s, err := ParseBytes("fuzz.yml", data)
		if err == nil {
			if s == nil || s.Version != 1 {
				t.Fatalf("accepted without a version-1 spec: %+v", s)
			}
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) == 0 {
			t.Fatalf("error %v (%T) is not a non-empty *Errors", err, err)
		}
		for _, e := range errs.List {
			if e.Pos.File != "fuzz.yml" || e.Pos.Line < 1 || e.Pos.Column < 1 {
				t.Errorf("error without a position in the file: %v", e)
			}
			if strings.TrimSpace(e.Msg) == "" {
				t.Errorf("error without a message at %v", e.Pos)
			}
			if utf8.ValidString(string(data)) && !utf8.ValidString(e.Msg) {
				t.Errorf("valid UTF-8 input gave an invalid UTF-8 message: %q", e.Msg)
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
