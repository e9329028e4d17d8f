package initproto

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The guest's hand-written JSON must be what encoding/json writes and reads.

func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	status, neg := 3, -1
	strs := []string{"", "web", "a\"b\\c", "<html>&amp;", "tab\there\nnl\r\b\f\x00\x1f\x7f",
		"héllo wörld ✓", "bad \xff utf8 \xc3", "line\u2028sep\u2029", "emoji 😀", strings.Repeat("x", 300)}
	floats := []float64{0, 1, 1.25, 3.801, 1e-7, 1.5e-9, 1e21, 123456789.123, 1e20, -2.5, 0.000001}
	var events []Event
	for i, s := range strs {
		events = append(events,
			Event{Uptime: floats[i%len(floats)], Kind: EvServiceFailed, Name: s, Detail: s, Status: &status, Log: []string{s, "x"}},
			Event{Uptime: floats[(i+3)%len(floats)], Kind: s, Status: &neg},
			Event{Kind: EvMemory, Data: map[string]int64{"mem_total": 1 << 30, s: -5, "a": 0}},
			Event{Kind: EvAllReady, Log: []string{}, Data: map[string]int64{}},
		)
	}
	for _, f := range floats {
		events = append(events, Event{Uptime: f, Kind: EvInitStart})
	}
	for _, e := range events {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEventJSON(nil, e); string(got) != string(want) {
			t.Errorf("event %#v:\n got %s\nwant %s", e, got, want)
		}
		if e.Kind == "" {
			continue // not an event DecodeEvent accepts
		}
		line := string(e.Encode())
		if back, err := DecodeEvent(line); err != nil || back.Kind != strings.ToValidUTF8(e.Kind, "\ufffd") || back.Name != strings.ToValidUTF8(e.Name, "\ufffd") {
			t.Errorf("%q: decoded %#v, %v", line, back, err)
		}
	}
	if got := string(appendJSONFloat(nil, math.NaN())); got != "0" {
		t.Errorf("NaN: %s", got)
	}
}

func TestParseConfigMatchesEncodingJSON(t *testing.T) {
	cfgs := []Config{
		{},
		{Hostname: "h"},
		{
			Hostname:    "web-1 \"q\" <&> é \u2028",
			Modules:     []string{"/lib/modules/a.ko", "/lib/modules/b.ko.zst"},
			Available:   map[string]Module{"virtio": {Path: "/v.ko"}, "virtio_pci": {Path: "/vp.ko", Depends: []string{"virtio", "virtio_ring"}}},
			LateModules: []string{"/button.ko"},
			Network:     &Network{Mode: NetworkStatic, Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: "10.0.2.3"},
			Onboot:      []Task{{Name: "t1", Exec: Exec{Path: "/bin/x", Args: []string{"a", "b\tc"}, Env: map[string]string{"A": "1", "B": ""}, Dir: "/tmp", UID: 4294967295, GID: 7}, Timeout: Duration(90 * time.Second)}},
			Onshutdown:  []Task{{Name: "bye", Exec: Exec{Path: "/bye"}}},
			Services: []Service{
				{Name: "s", Exec: Exec{Path: "/s"}, Restart: Restart{Policy: RestartOnFailure, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(time.Minute), MaxRestarts: 5},
					Ready: &Ready{TCP: "8080", Timeout: Duration(20 * time.Second), Interval: Duration(20 * time.Millisecond)}},
				{Name: "l", Ready: &Ready{Log: `^listening on .*:\d+$`, Exec: []string{"/probe", "-x"}, Unix: "/run/s.sock", File: "/run/ok"}},
				{Name: "n"},
				{Name: "box", Exec: Exec{Path: "/usr/bin/web", Sandbox: &Sandbox{Root: "/containers/box/rootfs", Caps: []int{0, 10}, Readonly: true,
					Binds:  []Bind{{Source: "/var/lib/web", Target: "/data", Writable: true}, {Source: "/etc/x", Target: "/x"}},
					NewNet: true, Unconfined: true, MemoryMax: 64 << 20, CPUMax: 500}}},
				{Name: "nocaps", Exec: Exec{Sandbox: &Sandbox{Caps: []int{}}}},
			},
		},
		{Network: &Network{Mode: NetworkDHCP}, Services: []Service{{Name: "x", Exec: Exec{Args: []string{}}}}},
	}
	for i, c := range cfgs {
		for _, indent := range []bool{false, true} {
			var b []byte
			if indent {
				b, _ = json.MarshalIndent(c, "", "  ")
			} else {
				b, _ = json.Marshal(c)
			}
			var want Config
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			got, err := ParseConfig(b)
			if err != nil {
				t.Fatalf("config %d: %v\n%s", i, err, b)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("config %d:\n got %#v\nwant %#v", i, *got, want)
			}
		}
	}
	// Unknown members are skipped, escapes and null read as encoding/json
	// reads them.
	in := `{"x":{"y":[1,2.5e3,true,false,null,"\u00e9"]},"hostname":"a\u00e9\ud83d\ude00\n\/","network":null,"services":[{"name":"s","ready":null,"exec":{"uid":3,"env":null}}]}`
	var want Config
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("got %#v\nwant %#v", *got, want)
	}
	for _, bad := range []string{``, `{`, `{"hostname":}`, `{"hostname":"x"`, `{"hostname":"x"}x`, `[]`, `{"services":[{"restart":{"backoff":"soon"}}]}`, `{"onboot":[{"exec":{"uid":-1}}]}`, `{"hostname":"a` + "\x01" + `"}`} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseConfig checks the guest's decoder against encoding/json: what
// both accept, they read alike.
func FuzzParseConfig(f *testing.F) {
	f.Add(`{"hostname":"h","services":[{"name":"s","exec":{"path":"/s","uid":1},"restart":{"policy":"always","backoff":"1s","max_backoff":"2s"},"ready":{"tcp":"80","timeout":"1s","interval":"0s"}}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		defer watchdog("ParseConfig", len(in))()
		if strings.ContainsAny(in, "\u212a\u017f") {
			return // encoding/json folds these into k and s in member names; the assembler writes none
		}
		got, err := ParseConfig([]byte(in))
		var want Config
		if json.Unmarshal([]byte(in), &want) != nil || err != nil {
			return
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("got %#v\nwant %#v", *got, want)
		}
	})
}

// TestParseReseedMatchesEncodingJSON: the guest reads a reseed command as
// encoding/json reads what Reseed.Command writes.
func TestParseReseedMatchesEncodingJSON(t *testing.T) {
	entropy := make([]byte, 64)
	for i := range entropy {
		entropy[i] = byte(i * 7)
	}
	for _, r := range []Reseed{
		{UnixNano: 1_700_000_000_123_456_789, Entropy: entropy},
		{UnixNano: 1, Entropy: entropy, Files: []byte("070701 newc\x00\xff")},
		{UnixNano: math.MaxInt64, Entropy: entropy[:32], Files: make([]byte, 3000)},
	} {
		line, err := r.Command()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseReseed(strings.TrimPrefix(line, CmdReseed+" "))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("got %+v\nwant %+v", got, r)
		}
	}
	for _, in := range []string{
		`{"time":5,"entropy":"AAEC","files":null,"x":[1,{"y":2}]}`,
		`{"TIME":5,"Entropy":""}`,
		` {"entropy":null} `,
	} {
		var want Reseed
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got, err := parseReseed([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v\nwant %#v", in, got, want)
		}
	}
	for _, bad := range []string{``, `{"time":"5"}`, `{"time":1e3}`, `{"time":99999999999999999999}`, `{"entropy":"!!"}`, `{"entropy":5}`, `{"time":1}x`} {
		var want Reseed
		if json.Unmarshal([]byte(bad), &want) == nil {
			t.Errorf("%q: encoding/json accepts it; the case is wrong", bad)
		}
		if _, err := parseReseed([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseReseed: what both the guest's decoder and encoding/json accept,
// they read alike.
func FuzzParseReseed(f *testing.F) {
	f.Add(`{"time":1700000000000000000,"entropy":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","files":"MDcwNzAx"}`)
	f.Fuzz(func(t *testing.T, in string) {
		defer watchdog("parseReseed", len(in))()
		if strings.ContainsAny(in, "\u212a\u017f") {
			return // encoding/json folds these into k and s in member names
		}
		got, err := parseReseed([]byte(in))
		var want Reseed
		if json.Unmarshal([]byte(in), &want) != nil || err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v\nwant %#v", got, want)
		}
	})
}
