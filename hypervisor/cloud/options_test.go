package cloud

import (
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	life, n, keep := time.Hour, 4, true
	o := map[string]string{"lifetime": "2m", "max-instances": "2", "keep-image": "false"}
	if err := ParseOptions("x", o, []DurationOption{{Key: "lifetime", Dst: &life}}, []CountOption{{Key: "max-instances", Dst: &n}}); err != nil {
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
			return ParseOptions("x", map[string]string{"poll": "0s"}, []DurationOption{{Key: "poll", Dst: &life}}, nil)
		},
		func() error {
			return ParseOptions("x", map[string]string{"n": "0"}, nil, []CountOption{{Key: "n", Dst: &n}})
		},
		func() error { _, err := ParseCommon("x", map[string]string{OptIngressCIDR: "10.0.0.1"}); return err },
		func() error { _, err := ParseCommon("x", map[string]string{OptKeepImage: "no"}); return err },
		func() error { _, err := ParseCommon("x", map[string]string{OptImageTTL: "-1h"}); return err },
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

// TestParseCommon: the defaults every cloud backend shares, and the
// options that override them.
func TestParseCommon(t *testing.T) {
	c, err := ParseCommon("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Common{MaxInstances: 4, Lifetime: time.Hour, ImageTTL: 24 * time.Hour, Poll: time.Second, KeepImage: true}); c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	c, err = ParseCommon("x", map[string]string{OptIngressCIDR: "203.0.113.7/32", OptMaxInstances: "9", OptLifetime: "10m",
		OptImageTTL: "2h", OptPoll: "250ms", OptKeepImage: "false"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Common{IngressCIDR: "203.0.113.7/32", MaxInstances: 9, Lifetime: 10 * time.Minute, ImageTTL: 2 * time.Hour, Poll: 250 * time.Millisecond}); c != want {
		t.Errorf("set %+v, want %+v", c, want)
	}
}
