package rawscan_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// TestMapMatchesTheExtents checks the map against the cases' known data,
// and that skipping the file's holes (reading an *os.File) and reading
// every byte (a bytes.Reader) agree.
func TestMapMatchesTheExtents(t *testing.T) {
	for _, c := range rawtest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			p := c.Make(t, t.TempDir())
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := rawscan.Scan(context.Background(), f, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int64]bool{}
			for i, e := range c.Extents {
				data := rawtest.Pattern(uint64(i), e.Len, e.Random)
				for j := int64(0); j < e.Len; j++ {
					if data[j] != 0 {
						want[(e.Off+j)/rawscan.Unit] = true
					}
				}
			}
			for u := int64(0); u < m.Units(); u++ {
				if m.Used(u) != want[u] {
					t.Errorf("unit %d: used %v, want %v", u, m.Used(u), want[u])
				}
			}
			if m.UsedUnits() != int64(len(want)) {
				t.Errorf("%d used units, want %d", m.UsedUnits(), len(want))
			}
			for _, e := range c.Extents {
				if !m.UsedIn(e.Off, e.Len) {
					t.Errorf("UsedIn(%d, %d) is false over data", e.Off, e.Len)
				}
			}
			all, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := rawscan.Scan(context.Background(), bytes.NewReader(all), c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if m2.Digest != m.Digest || m2.UsedUnits() != m.UsedUnits() {
				t.Error("scanning the file (holes skipped) and its bytes disagree")
			}
			all[len(all)/2] ^= 0x40
			m3, err := rawscan.Scan(context.Background(), bytes.NewReader(all), c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if m3.Digest == m.Digest || m3.ID("x") == m.ID("x") {
				t.Error("a changed byte left the digest and ID unchanged")
			}
			if m.ID("x") == m.ID("y") {
				t.Error("two purposes gave the same ID")
			}
		})
	}
}
