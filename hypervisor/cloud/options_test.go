package cloud

import (
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	life, n, keep := time.Hour, 4, true
	o := map[string]string{"lifetime": "2m", "max-instances": "2", "keep-image": "false"}
	if err := ParseOptions("x", o, []DurationOption{{Key: "lifetime", Dst: &life}}, []CountOption{{Key: "max-instances", Dst: &n}}, "10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if err := ParseBools("x", o, BoolOption{Key: "keep-image", Dst: &keep}); err != nil {
		t.Fatal(err)
	}
	if life != 2*time.Minute || n != 2 || keep {
		t.Errorf("lifetime %s, max-instances %d, keep-image %v", life, n, keep)
	}
	for _, bad := range []func() error{
		func() error {
			return ParseOptions("x", map[string]string{"poll": "0s"}, []DurationOption{{Key: "poll", Dst: &life}}, nil, "")
		},
		func() error {
			return ParseOptions("x", map[string]string{"n": "0"}, nil, []CountOption{{Key: "n", Dst: &n}}, "")
		},
		func() error { return ParseOptions("x", nil, nil, nil, "10.0.0.1") },
		func() error { return ParseBools("x", map[string]string{"b": "yes"}, BoolOption{Key: "b", Dst: &keep}) },
		func() error { return CheckEndpoints("x", "", "ftp://h/") },
	} {
		if err := bad(); err == nil || !strings.HasPrefix(err.Error(), "x: ") {
			t.Errorf("want an error naming the backend, got %v", err)
		}
	}
	if err := CheckEndpoints("x", "", "http://127.0.0.1:1/"); err != nil {
		t.Error(err)
	}
}
