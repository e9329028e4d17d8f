package testcases

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/spec"
)

// FuzzParseTestFile feeds arbitrary bytes to the test.yml parser: it
// returns whatever the input, and a rejection is a *spec.Errors whose every
// entry has a position in the file. Seeds: testdata/fuzz/FuzzParseTestFile.
//
//	go test ./testcases -run '^$' -fuzz FuzzParseTestFile -fuzztime 10m -parallel 1
func FuzzParseTestFile(f *testing.F) {
	f.Add([]byte("expect:\n  - services_ready: [web]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog("ParseTestBytes", len(data))()
		tf, err := ParseTestBytes("test.yml", data)
		if err == nil {
			if tf == nil || tf.Repeat < 1 {
				t.Fatalf("accepted as %+v", tf)
			}
			for _, a := range tf.Expect {
				if a.Kind == "" {
					t.Errorf("accepted an assertion without a kind at %v", a.Pos)
				}
			}
			return
		}
		var errs *spec.Errors
		if !errors.As(err, &errs) || len(errs.List) == 0 {
			t.Fatalf("error %v (%T) is not a non-empty *spec.Errors", err, err)
		}
		for _, e := range errs.List {
			if e.Pos.File != "test.yml" || e.Pos.Line < 1 || e.Pos.Column < 1 || e.Msg == "" {
				t.Errorf("error without a position or message: %v", e)
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
