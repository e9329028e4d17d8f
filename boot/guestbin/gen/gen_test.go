package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kitrun/kitrun/boot/guestbin"
)

// TestCommittedMatchesFreshBuild is the CI check that what kitrun ships is
// what its sources build: it regenerates every program for every arch and
// compares with the committed manifest and bundles. A fresh build can only
// equal the committed bytes with the toolchain that made them: with another
// one this test says so and skips; `make check-generated` fetches the
// recorded toolchain instead (GOTOOLCHAIN) and compares anyway.
func TestCommittedMatchesFreshBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds every guest program for every arch")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pkg := os.DirFS(filepath.Join(root, filepath.FromSlash(pkgDir)))
	committed, err := guestbin.ReadManifest(pkg)
	if err != nil {
		t.Fatal(err)
	}
	local, err := goEnv(ctx, nil, "GOVERSION")
	if err != nil {
		t.Fatal(err)
	}
	if recorded := committed.GoVersions(); len(recorded) != 1 || recorded[0] != local {
		t.Skipf("the embedded programs were built with %v, this toolchain is %s: `make check-generated` compares with the recorded toolchain", recorded, local)
	}
	g, err := generate(ctx, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sizes strings.Builder
	report(&sizes, g)
	t.Log("\n" + sizes.String())
	if problems := compare(pkg, committed, g.manifest); len(problems) > 0 {
		t.Fatalf("the embedded guest programs are not what the sources build; run `make generate` and commit boot/guestbin/embedded:\n  %s",
			strings.Join(problems, "\n  "))
	}
}

// TestCompressDeterministic: the same bundle compresses to the same bytes
// (one goroutine, a fixed level and window), and back.
func TestCompressDeterministic(t *testing.T) {
	data := bytes.Repeat([]byte("kitinit kitsshd floorinit "), 100000)
	a, err := compress(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := compress(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || len(a) >= len(data)/10 {
		t.Fatalf("two compressions: %d and %d bytes (equal: %v) of %d", len(a), len(b), bytes.Equal(a, b), len(data))
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if back, err := dec.DecodeAll(a, nil); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip: %v", err)
	}
}

// TestCompareNamesEachDifference checks that the check fails, naming the
// program and the cure, for each way the committed files can be stale.
func TestCompareNamesEachDifference(t *testing.T) {
	pkg := os.DirFS("..")
	committed, err := guestbin.ReadManifest(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if p := compare(pkg, committed, committed); len(p) != 0 {
		t.Fatalf("the committed files differ from themselves: %v", p)
	}
	edit := func(f func(m *guestbin.Manifest)) *guestbin.Manifest {
		m := *committed
		m.Sources = append([]guestbin.Source(nil), committed.Sources...)
		m.Bundles = nil
		for _, b := range committed.Bundles {
			b.Binaries = append([]guestbin.Record(nil), b.Binaries...)
			m.Bundles = append(m.Bundles, b)
		}
		f(&m)
		return &m
	}
	cases := []struct {
		name  string
		fresh *guestbin.Manifest
		want  string
	}{
		{"sources changed", edit(func(m *guestbin.Manifest) { m.Sources[0].Digest = "00" }), "kitinit: its sources changed"},
		{"new dependency", edit(func(m *guestbin.Manifest) { m.Sources[1].Modules = append(m.Sources[1].Modules, "example.com/x") }), "kitsshd: it is now built from"},
		{"other bytes", edit(func(m *guestbin.Manifest) { m.Bundles[0].Binaries[2].SHA256 = "ff" }), "floorinit: a fresh build"},
		{"other toolchain", edit(func(m *guestbin.Manifest) { m.Bundles[0].Binaries[0].Go = "go9.9" }), "go9.9"},
		{"new arch", edit(func(m *guestbin.Manifest) {
			m.Bundles = append(m.Bundles, guestbin.Bundle{Arch: "loong64", Binaries: m.Bundles[0].Binaries})
		}), "loong64: no embedded programs"},
		{"arch removed", edit(func(m *guestbin.Manifest) { m.Bundles = m.Bundles[1:] }), "no longer in boot/arch's table"},
	}
	for _, c := range cases {
		p := compare(pkg, committed, c.fresh)
		if !strings.Contains(strings.Join(p, "\n"), c.want) {
			t.Errorf("%s: got %q, want a problem mentioning %q", c.name, p, c.want)
		}
	}
}
