package initproto

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeEvent feeds arbitrary lines to the host's decoder of the event
// channel, which carries what a guest writes: it must return, and any event
// it accepts must encode and decode back to itself. Seeds:
// testdata/fuzz/FuzzDecodeEvent. Extend this target as the channel's framing
// grows.
//
//	go test ./boot/initproto -run '^$' -fuzz FuzzDecodeEvent -fuzztime 10m -parallel 1
func FuzzDecodeEvent(f *testing.F) {
	status := 3
	f.Add(string(Event{Uptime: 1.25, Kind: EvServiceFailed, Name: "web", Status: &status, Log: []string{"boom"}}.Encode()))
	f.Fuzz(func(t *testing.T, line string) {
		defer watchdog("DecodeEvent", len(line))()
		e, err := DecodeEvent(line)
		if err != nil {
			return
		}
		again, err := DecodeEvent(string(e.Encode()))
		if err != nil {
			t.Fatalf("an accepted event does not survive encoding: %v", err)
		}
		// Encoding leaves out empty lists and maps (omitempty).
		for _, ev := range []*Event{&e, &again} {
			if len(ev.Log) == 0 {
				ev.Log = nil
			}
			if len(ev.Data) == 0 {
				ev.Data = nil
			}
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the event:\n%#v\n%#v", e, again)
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
