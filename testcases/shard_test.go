package testcases

import (
	"slices"
	"testing"
)

// Every test of the shipped cases is in exactly one shard, groups whole,
// whatever N.
func TestShardsPartitionThePlan(t *testing.T) {
	all, err := Plan(Options{Dir: "cases", Arches: []string{"x86_64", "aarch64"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 16, 100} {
		seen := map[string]int{}
		for i := 1; i <= n; i++ {
			part, err := Plan(Options{Dir: "cases", Arches: []string{"x86_64", "aarch64"}, Shard: Shard{i, n}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range part {
				if _, dup := seen[r.Name+"/"+r.Arch]; dup {
					t.Errorf("%d shards: %s [%s] in two shards", n, r.Name, r.Arch)
				}
				seen[r.Name+"/"+r.Arch] = i
			}
		}
		if len(seen) != len(all) {
			t.Errorf("%d shards hold %d tests, the plan %d", n, len(seen), len(all))
		}
		groupShard := map[string]int{}
		for _, r := range all {
			if r.Group == "fixtures" {
				groupShard[r.Group] = seen[r.Name+"/"+r.Arch]
				if groupShard[r.Group] != seen[r.Name+"/"+r.Arch] {
					t.Errorf("%d shards: group fixtures split", n)
				}
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	for _, bad := range []string{"0/2", "3/2", "1", "a/b", "1/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) took it", bad)
		}
	}
	if s, err := ParseShard("2/4"); err != nil || s != (Shard{2, 4}) {
		t.Errorf("ParseShard(2/4) = %v, %v", s, err)
	}
	if !slices.Contains([]string{""}, Shard{}.String()) {
		t.Error("the zero shard is not empty")
	}
}
