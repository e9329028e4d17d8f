package deb_test

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/deb"
)

// TestRealPackagesMatchDpkg extracts the Debian packages `make deps`
// fetched and checks every regular file against what dpkg-deb lists. It is
// skipped when they are missing, except on CI (CI=true), where that fails.
func TestRealPackagesMatchDpkg(t *testing.T) {
	skip := t.Skip
	if os.Getenv("CI") == "true" {
		skip = t.Fatal
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		skip("dpkg-deb not installed")
	}
	debs, _ := filepath.Glob(filepath.Join(assemble.DefaultCacheDir(), "packages", "*.deb"))
	if len(debs) == 0 {
		skip("no packages in the cache; run `make deps`")
	}
	cache := t.TempDir()
	for _, p := range debs {
		t.Run(filepath.Base(p), func(t *testing.T) {
			out, err := exec.Command("dpkg-deb", "-c", p).Output()
			if err != nil {
				t.Fatalf("dpkg-deb -c: %v", err)
			}
			want := map[string]int64{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(line)
				if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
					continue // directories, links
				}
				size, _ := strconv.ParseInt(f[2], 10, 64)
				want[strings.TrimPrefix(strings.Join(f[5:], " "), "./")] = size
			}
			dir, err := deb.ExtractCached(context.Background(), p, cache)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			filepath.WalkDir(dir, func(q string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					st, _ := d.Info()
					rel, _ := filepath.Rel(dir, q)
					got[filepath.ToSlash(rel)] = st.Size()
				}
				return err
			})
			if !maps.Equal(got, want) {
				t.Errorf("extracted %v\ndpkg-deb lists %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
		})
	}
	if ents, _ := os.ReadDir(cache); len(ents) != len(debs) {
		t.Errorf("cache holds %d entries for %d packages", len(ents), len(debs))
	}
}
