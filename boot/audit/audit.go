// Package audit owns `kitrun audit`: the security posture of the image a
// spec builds. It checks the kernel's own config (from its .deb) against
// the Kernel Self Protection Project's recommended settings (kspp_table.go,
// with its source), and reports the image's attack surface: setuid and
// setgid files, services that run as root and the capabilities they keep,
// writable paths, and programs without a sandbox. Each finding has a level,
// so CI can fail on, say, anything medium or worse.
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/spec"
)

// Level is a finding's severity.
type Level int

// Levels, in increasing severity.
const (
	Info Level = iota
	Low
	Medium
	High
)

var levelNames = []string{"info", "low", "medium", "high"}

func (l Level) String() string { return levelNames[l] }

// MarshalText writes the level's name in JSON.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// ParseLevel reads a level name.
func ParseLevel(s string) (Level, error) {
	if i := slices.Index(levelNames, s); i >= 0 {
		return Level(i), nil
	}
	return 0, fmt.Errorf("unknown level %q; use one of %s", s, strings.Join(levelNames, ", "))
}

// KernelCheck is one KSPP setting checked against the kernel's config.
type KernelCheck struct {
	Setting  string `json:"setting"` // CONFIG_ name
	Wanted   string `json:"wanted"`
	Actual   string `json:"actual"` // "is not set" when absent
	OK       bool   `json:"ok"`
	Category string `json:"category"`
}

// Finding is one fact about the image's attack surface.
type Finding struct {
	Level   Level  `json:"level"`
	Kind    string `json:"kind"`    // setuid, setgid, root, capabilities, writable, unsandboxed, kernel
	Subject string `json:"subject"` // a path or a program
	Detail  string `json:"detail"`
}

// Report is an audit.
type Report struct {
	Spec          string        `json:"spec"`
	Arch          string        `json:"arch"`
	Kernel        string        `json:"kernel"`
	KernelConfig  string        `json:"kernel_config"`
	KSPPSource    string        `json:"kspp_source"`
	KernelChecks  []KernelCheck `json:"kernel_checks"`
	KernelPassed  int           `json:"kernel_passed"`
	Findings      []Finding     `json:"findings"`
	Ports         []Port        `json:"ports,omitempty"` // nil: not looked for
	NotChecked    []string      `json:"not_checked,omitempty"`
	WorstFinding  Level         `json:"worst"`
	FindingCounts map[Level]int `json:"counts"`
}

// Run audits the image s builds with opts (nothing is written).
func Run(ctx context.Context, s *spec.Spec, opts assemble.Options) (*Report, error) {
	c, err := assemble.Inspect(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	r := &Report{Spec: s.File, Arch: c.Arch, Kernel: c.Kernel.Version, KernelConfig: c.Kernel.Config,
		KSPPSource: KSPPSource, FindingCounts: map[Level]int{},
		// Ports a service opens are known only once it runs: AddPorts,
		// after booting the image, fills them in.
		NotChecked: []string{"listening ports (boot the image: --boot)"}}
	if c.Kernel.Config == "" {
		r.add(Finding{Level: Medium, Kind: "kernel", Subject: c.Kernel.Version, Detail: "the kernel has no config file to check against KSPP"})
	} else {
		cfg, err := readKconfig(c.Kernel.Config)
		if err != nil {
			return nil, err
		}
		r.KernelChecks = checkKernel(cfg, c.Arch)
		for _, k := range r.KernelChecks {
			if k.OK {
				r.KernelPassed++
				continue
			}
			r.add(Finding{Level: Low, Kind: "kernel", Subject: k.Setting,
				Detail: fmt.Sprintf("KSPP recommends %s, the kernel has %s", k.Wanted, k.Actual)})
		}
	}
	r.surface(c)
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Level > r.Findings[j].Level })
	return r, nil
}

func (r *Report) add(f Finding) {
	r.Findings = append(r.Findings, f)
	r.FindingCounts[f.Level]++
	r.WorstFinding = max(r.WorstFinding, f.Level)
}

// Fails says whether any finding is at least level.
func (r *Report) Fails(level Level) bool { return len(r.Findings) > 0 && r.WorstFinding >= level }

// readKconfig reads a kernel .config: CONFIG_X=value, and "# CONFIG_X is
// not set".
func readKconfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# CONFIG_"); ok {
			if n, ok := strings.CutSuffix(name, " is not set"); ok {
				cfg[n] = "is not set"
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "CONFIG_"); ok {
			if k, v, ok := strings.Cut(rest, "="); ok {
				cfg[k] = v
			}
		}
	}
	return cfg, sc.Err()
}

type ksppSetting struct {
	name, value, category string
	arches                []string
}

// checkerArch is kernel-hardening-checker's name of a kitrun arch.
var checkerArch = map[string]string{"x86_64": "X86_64", "aarch64": "ARM64", "riscv64": "RISCV"}

// checkKernel compares cfg with the KSPP settings for arch, as
// kernel-hardening-checker does: "y" must be y (a module is not enough),
// "is not set" is also met by an absent option, *text* must be contained
// in the (string) value, anything else must be equal.
func checkKernel(cfg map[string]string, arch string) []KernelCheck {
	ca := checkerArch[arch]
	var out []KernelCheck
	for _, k := range kspp {
		if !slices.Contains(k.arches, ca) {
			continue
		}
		actual, ok := cfg[k.name]
		if !ok {
			actual = "is not set"
		}
		var pass bool
		switch {
		case strings.HasPrefix(k.value, "*") && strings.HasSuffix(k.value, "*"):
			pass = strings.Contains(strings.Trim(actual, `"`), strings.Trim(k.value, "*"))
		default:
			pass = actual == k.value
		}
		out = append(out, KernelCheck{Setting: "CONFIG_" + k.name, Wanted: k.value, Actual: actual, OK: pass, Category: k.category})
	}
	return out
}

// surface reports the image's files and programs.
func (r *Report) surface(c *assemble.Contents) {
	for _, e := range c.Files {
		if e.Type != "file" {
			continue
		}
		mode, _ := strconv.ParseUint(e.Mode, 8, 32)
		if mode&0o4000 != 0 {
			r.add(Finding{Level: Medium, Kind: "setuid", Subject: e.Path, Detail: fmt.Sprintf("mode %s, owner %d (%s)", e.Mode, e.UID, e.Origin)})
		}
		if mode&0o2000 != 0 {
			r.add(Finding{Level: Low, Kind: "setgid", Subject: e.Path, Detail: fmt.Sprintf("mode %s, group %d (%s)", e.Mode, e.GID, e.Origin)})
		}
	}
	type prog struct {
		name string
		x    initproto.Exec
	}
	var progs []prog
	for _, t := range c.Config.Onboot {
		progs = append(progs, prog{"onboot/" + t.Name, t.Exec})
	}
	for _, s := range c.Config.Services {
		progs = append(progs, prog{"services/" + s.Name, s.Exec})
	}
	for _, t := range c.Config.Onshutdown {
		progs = append(progs, prog{"onshutdown/" + t.Name, t.Exec})
	}
	for _, p := range progs {
		sb := p.x.Sandbox
		if sb == nil {
			lvl := Medium
			detail := "runs in the image's root with every process, path and device in view"
			if p.x.UID == 0 {
				lvl, detail = High, detail+", as root with every capability"
			}
			r.add(Finding{Level: lvl, Kind: "unsandboxed", Subject: p.name, Detail: detail})
			r.add(Finding{Level: Info, Kind: "writable", Subject: p.name, Detail: "the whole image root (a RAM file system)"})
			continue
		}
		// kitinit gives CAP_MKNOD up for good at boot (LockConsole): a
		// sandbox that names it does not get it.
		caps := capNames(slices.DeleteFunc(slices.Clone(sb.Caps), func(c int) bool { return c == initproto.Capabilities["CAP_MKNOD"] }))
		if p.x.UID == 0 {
			r.add(Finding{Level: Low, Kind: "root", Subject: p.name, Detail: "runs as root in its sandbox, keeping " + strconv.Itoa(len(caps)) + " capabilities"})
		}
		r.add(Finding{Level: Info, Kind: "capabilities", Subject: p.name, Detail: strings.Join(caps, " ")})
		var w []string
		switch {
		case sb.Root == "":
			w = append(w, "the whole image root (shared: the program has no image of its own)")
		case !sb.Readonly:
			w = append(w, "/ (root not read-only)", "/tmp (tmpfs)")
		default:
			w = append(w, "/tmp (tmpfs)")
		}
		for _, b := range sb.Binds {
			if b.Writable {
				w = append(w, b.Target+" (bind of "+b.Source+")")
			}
		}
		r.add(Finding{Level: Info, Kind: "writable", Subject: p.name, Detail: strings.Join(w, ", ")})
		if sb.Unconfined {
			r.add(Finding{Level: Medium, Kind: "unsandboxed", Subject: p.name, Detail: "seccomp: unconfined (no syscall filter)"})
		}
	}
}

func capNames(nums []int) []string {
	var out []string
	for name, n := range initproto.Capabilities {
		if slices.Contains(nums, n) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people: the KSPP table, then the
// findings.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "kernel %s (%s) against KSPP recommended settings: %d of %d met\n", r.Kernel, r.Arch, r.KernelPassed, len(r.KernelChecks))
	fmt.Fprintf(tw, "source: %s\n\n", r.KSPPSource)
	fmt.Fprintln(tw, "SETTING\tWANTED\tACTUAL\tOK")
	for _, k := range r.KernelChecks {
		ok := "no"
		if k.OK {
			ok = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Setting, k.Wanted, k.Actual, ok)
	}
	fmt.Fprintln(tw, "\nLEVEL\tKIND\tSUBJECT\tDETAIL")
	for _, f := range r.Findings {
		if f.Kind == "kernel" {
			continue // in the table above
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Level, f.Kind, f.Subject, f.Detail)
	}
	for _, n := range r.NotChecked {
		fmt.Fprintf(tw, "-\tnot checked\t%s\t\n", n)
	}
	fmt.Fprintf(tw, "\nworst: %s (high %d, medium %d, low %d, info %d)\n", r.WorstFinding,
		r.FindingCounts[High], r.FindingCounts[Medium], r.FindingCounts[Low], r.FindingCounts[Info])
	return tw.Flush()
}
