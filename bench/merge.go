package bench

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// NodeName is the machine runs are on: $SLURMD_NODENAME inside a Slurm
// job, else the hostname.
func NodeName() string {
	if n := os.Getenv("SLURMD_NODENAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// Merge combines the results of benches run apart (the Slurm executor's
// jobs) into one: configurations by ID in first-seen order, their samples
// appended and renumbered, statistics recomputed. Host, versions and the
// run settings are the first result's; Runs is the most samples of a
// configuration. The warnings name every configuration whose samples come
// from more than one node: its statistics then mix hosts.
func Merge(rs ...*Results) (*Results, []string) {
	if len(rs) == 0 {
		return nil, nil
	}
	out := *rs[0]
	out.Configs = nil
	index := map[string]int{}
	for _, r := range rs {
		if r.Started.Before(out.Started) {
			out.Started = r.Started
		}
		out.Interrupted = out.Interrupted || r.Interrupted
		for _, c := range r.Configs {
			i, ok := index[c.ID]
			if !ok {
				i = len(out.Configs)
				index[c.ID] = i
				c.Samples = slices.Clone(c.Samples)
				out.Configs = append(out.Configs, c)
				continue
			}
			out.Configs[i].Samples = append(out.Configs[i].Samples, c.Samples...)
		}
	}
	var warnings []string
	out.Runs = 0
	for i := range out.Configs {
		c := &out.Configs[i]
		nodes := map[string]bool{}
		for j := range c.Samples {
			c.Samples[j].Run = j + 1
			if n := c.Samples[j].Node; n != "" {
				nodes[n] = true
			}
		}
		out.Runs = max(out.Runs, len(c.Samples))
		if len(nodes) > 1 {
			var ns []string
			for n := range nodes {
				ns = append(ns, n)
			}
			sort.Strings(ns)
			warnings = append(warnings, fmt.Sprintf("%s: samples from %d nodes (%s); its statistics mix hosts",
				c.ID, len(ns), strings.Join(ns, ", ")))
		}
	}
	out.summarize()
	return &out, warnings
}

// Nodes are the nodes a configuration's samples ran on, sorted.
func (c *Config) Nodes() []string {
	seen := map[string]bool{}
	var ns []string
	for _, s := range c.Samples {
		if s.Node != "" && !seen[s.Node] {
			seen[s.Node] = true
			ns = append(ns, s.Node)
		}
	}
	sort.Strings(ns)
	return ns
}
