package testcases

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
)

// TestFile is a parsed test.yml.
type TestFile struct {
	File    string
	Summary string
	Labels  []string
	// Arches the test is meant for; empty means any (the runner's arch).
	Arches []string
	// Timeout covers boot and assertions; 0 means the runner's default.
	Timeout time.Duration
	Repeat  int
	// SSH turns the guest's SSH server on with per-run keys.
	SSH bool
	// Publish lists guest TCP ports forwarded from free 127.0.0.1 ports.
	Publish   []int
	MemoryMiB int
	// Implicit checks run unless set to false.
	Implicit bool
	// Snapshot lets the test start from a snapshot of its machine taken
	// at all-ready (vm.Snapshots) when the runner has them; `snapshot:
	// false` makes it boot cold. See SnapshotOK.
	Snapshot bool
	// Skip, when set, skips the test with this reason.
	Skip string
	// AllowConsole exempts matching console lines from the implicit checks.
	AllowConsole []*regexp.Regexp
	Expect       []Assertion

	publishPos spec.Pos
	// snapshotPos is where `snapshot:` was set (zero when it was not).
	snapshotPos spec.Pos
}

// bootKinds are the assertions about the boot itself (its events, its
// console, how it ends): a VM restored from a snapshot does not boot, so
// a test that has one boots cold.
var bootKinds = []string{
	KindTasksSucceeded, KindTaskFails, KindServiceFails, KindServiceRestarted, KindEvent,
	KindEventsInOrder, KindConsole, KindConsoleNot, KindHaltsItself, KindRebootsItself,
}

// SnapshotOK says whether the test may start from a snapshot, and if not,
// why: `snapshot: false`, or an assertion about the boot (bootKinds).
// services_ready, exec, file, tcp and shutdown are about the running
// system: a restored kitinit names its ready services again.
func (tf *TestFile) SnapshotOK() (bool, string) {
	if !tf.Snapshot {
		return false, "snapshot: false"
	}
	for _, a := range tf.Expect {
		if slices.Contains(bootKinds, a.Kind) {
			return false, fmt.Sprintf("%s at %s checks the boot", a.Kind, a.Pos)
		}
	}
	return true, ""
}

// Assertion is one entry of `expect:`. Kind says which fields matter.
type Assertion struct {
	Kind string
	Pos  spec.Pos
	// Text is the entry as a one-line summary, for reports.
	Text string

	Names   []string       // services_ready, tasks_succeeded, service_fails, task_fails, events_in_order
	Port    int            // tcp
	Send    string         // tcp
	Pattern *regexp.Regexp // console, console_not, event; tcp: expect
	Cmd     string         // exec
	Stdin   string         // exec
	Status  *int           // exec (default 0), task_fails
	Stdout  *regexp.Regexp // exec
	Stderr  *regexp.Regexp // exec
	Path    string         // file
	Exists  bool           // file (default true)
	Type    string         // file
	Mode    string         // file, four octal digits
	UID     *int           // file
	GID     *int           // file
	Size    *int64         // file
	Target  *string        // file (symlink target)
	// Contains is matched against a file's content.
	Contains      *regexp.Regexp
	Times         int              // service_restarted (at least)
	ShutdownTasks []string         // shutdown
	Grace         time.Duration    // shutdown
	Allow         []*regexp.Regexp // allow_console
	Timeout       time.Duration    // 0: until the test's deadline (exec: 30s, tcp: 10s)
	keyPos        map[string]spec.Pos
}

// Assertion kinds, in the order the documentation lists them.
const (
	KindServicesReady    = "services_ready"
	KindServiceFails     = "service_fails"
	KindServiceRestarted = "service_restarted"
	KindTasksSucceeded   = "tasks_succeeded"
	KindTaskFails        = "task_fails"
	KindEvent            = "event"
	KindEventsInOrder    = "events_in_order"
	KindTCP              = "tcp"
	KindExec             = "exec"
	KindFile             = "file"
	KindConsole          = "console"
	KindConsoleNot       = "console_not"
	KindShutdown         = "shutdown"
	KindHaltsItself      = "halts_itself"
	KindRebootsItself    = "reboots_itself"
	KindAllowConsole     = "allow_console"
)

// kinds maps each assertion kind to the modifier keys it accepts.
var kinds = map[string][]string{
	KindServicesReady:    {"timeout"},
	KindServiceFails:     {"timeout"},
	KindServiceRestarted: {"times", "timeout"},
	KindTasksSucceeded:   {"timeout"},
	KindTaskFails:        {"status", "timeout"},
	KindEvent:            {"timeout"},
	KindEventsInOrder:    {"timeout"},
	KindTCP:              {"send", "expect", "timeout"},
	KindExec:             {"status", "stdout", "stderr", "stdin", "timeout"},
	KindFile:             {"exists", "type", "mode", "uid", "gid", "size", "contains", "target", "timeout"},
	KindConsole:          {"timeout"},
	KindConsoleNot:       {},
	KindShutdown:         {"shutdown_tasks", "grace"},
	KindHaltsItself:      {"timeout"},
	KindRebootsItself:    {"timeout"},
	KindAllowConsole:     {},
}

// KindNames lists the assertion kinds in documentation order.
var KindNames = []string{
	KindServicesReady, KindServiceFails, KindServiceRestarted, KindTasksSucceeded, KindTaskFails,
	KindEvent, KindEventsInOrder, KindTCP, KindExec, KindFile, KindConsole, KindConsoleNot,
	KindShutdown, KindHaltsItself, KindRebootsItself, KindAllowConsole,
}

// needsSSH says which kinds run over SSH.
func needsSSH(kind string) bool { return kind == KindExec || kind == KindFile }

var topKeys = []string{
	"summary", "labels", "arches", "timeout", "repeat", "ssh", "publish", "mem",
	"implicit", "snapshot", "skip", "allow_console", "expect",
}

var labelRule = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseTestFile reads and validates a test.yml.
func ParseTestFile(path string) (*TestFile, error) {
	data, err := spec.ReadYAMLFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTestBytes(path, data)
}

// ParseTestBytes parses test.yml data; file names it in messages. On failure
// the error is a *spec.Errors listing every problem, each as
// FILE:LINE:COLUMN: what is wrong; what would be valid.
func ParseTestBytes(file string, data []byte) (*TestFile, error) {
	p := &yparser{file: file}
	tf := &TestFile{File: file, Repeat: 1, Implicit: true, Snapshot: true, MemoryMiB: 256}
	root := p.document(data, "a test file")
	if root == nil {
		return nil, p.err()
	}
	for _, e := range p.pairs(root, "test file") {
		k, v := e.key, e.val
		switch k.Value {
		case "summary":
			tf.Summary, _ = p.str(v, "summary")
		case "labels":
			tf.Labels, _ = p.strs(v, "labels")
			for _, l := range tf.Labels {
				if !labelRule.MatchString(l) {
					p.errorf(p.at(v), "labels: %q is not a valid label; use letters, digits, '_', '.' and '-'", l)
				}
			}
		case "arches":
			names, _ := p.strs(v, "arches")
			for _, n := range names {
				a, err := arch.Lookup(n)
				if err != nil {
					p.errorf(p.at(v), "arches: %v", err)
					continue
				}
				tf.Arches = append(tf.Arches, a.Name)
			}
		case "timeout":
			tf.Timeout, _ = p.duration(v, "timeout")
		case "repeat":
			n, _ := p.integer(v, "repeat", 1, 1000, "a count from 1 to 1000")
			tf.Repeat = max(int(n), 1)
		case "ssh":
			tf.SSH, _ = p.boolean(v, "ssh")
		case "publish":
			tf.Publish, tf.publishPos = p.ports(v), p.at(k)
		case "mem":
			if s, ok := p.str(v, "mem"); ok {
				if n, err := hypervisor.ParseMemory(s); err != nil {
					p.errorf(p.at(v), "mem: %v", err)
				} else {
					tf.MemoryMiB = n
				}
			}
		case "implicit":
			tf.Implicit, _ = p.boolean(v, "implicit")
		case "snapshot":
			tf.Snapshot, _ = p.boolean(v, "snapshot")
			tf.snapshotPos = p.at(v)
		case "skip":
			tf.Skip, _ = p.str(v, "skip")
		case "allow_console":
			tf.AllowConsole = append(tf.AllowConsole, p.regexps(v, "allow_console")...)
		case "expect":
			items, _ := p.list(v, "expect", "a list of assertions (- services_ready: [NAME], - console: REGEX, ...)")
			for _, it := range items {
				// Kept even when it has problems, so that checks across
				// entries (SSH) report in the same round.
				if a, _ := p.assertion(it); a.Kind != "" {
					tf.Expect = append(tf.Expect, a)
				}
			}
		default:
			p.unknownKey(k, "test file", topKeys)
		}
	}
	for _, a := range tf.Expect {
		if needsSSH(a.Kind) && !tf.SSH {
			p.errorf(a.Pos, "%s runs over SSH; add `ssh: true` to the test file", a.Kind)
		}
		if a.Kind == KindAllowConsole {
			tf.AllowConsole = append(tf.AllowConsole, a.Allow...)
		}
		if tf.Snapshot && tf.snapshotPos != (spec.Pos{}) && slices.Contains(bootKinds, a.Kind) {
			p.errorf(tf.snapshotPos, "snapshot: true, but %s at %s checks the boot, which a VM restored from a snapshot does not go through; set `snapshot: false` or leave it out (such tests boot cold)", a.Kind, a.Pos)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return tf, nil
}

func (p *yparser) ports(n *yaml.Node) []int {
	const expected = "a list of guest ports, e.g. [\"8080\"]"
	items, ok := p.list(n, "publish", expected)
	if !ok {
		return nil
	}
	var out []int
	for _, it := range items {
		if !p.scalar(it, "publish", expected) {
			continue
		}
		port, err := strconv.Atoi(it.Value)
		if err != nil || port < 1 || port > 65535 {
			p.errorf(p.at(it), "publish: %q is not a guest port; use a number 1-65535 (the host port is chosen free on 127.0.0.1)", it.Value)
			continue
		}
		out = append(out, port)
	}
	return out
}

func (p *yparser) regexps(n *yaml.Node, label string) []*regexp.Regexp {
	if n.Kind == yaml.ScalarNode {
		re, ok := p.regexp(n, label)
		if !ok {
			return nil
		}
		return []*regexp.Regexp{re}
	}
	items, ok := p.list(n, label, "a regular expression or a list of them")
	if !ok {
		return nil
	}
	var out []*regexp.Regexp
	for _, it := range items {
		if re, ok := p.regexp(it, label); ok {
			out = append(out, re)
		}
	}
	return out
}

// assertion parses one `expect:` entry: a mapping with exactly one kind key
// and that kind's modifiers.
func (p *yparser) assertion(n *yaml.Node) (Assertion, bool) {
	a := Assertion{Pos: p.at(n), Exists: true, keyPos: map[string]spec.Pos{}}
	if n.Kind != yaml.MappingNode {
		p.typeError(n, "an expect entry", "a mapping such as `services_ready: [hello]`")
		return a, false
	}
	errs := len(p.errs)
	pairs := p.pairs(n, "assertion")
	var kindEntry *entry
	for i, e := range pairs {
		if _, ok := kinds[e.key.Value]; !ok {
			continue
		}
		if kindEntry != nil {
			p.errorf(p.at(e.key), "%s and %s are two assertions; give each its own list entry (- %s: ...)", kindEntry.key.Value, e.key.Value, e.key.Value)
			continue
		}
		kindEntry = &pairs[i]
	}
	if kindEntry == nil {
		for _, e := range pairs {
			if isModifier(e.key.Value) {
				continue
			}
			msg := fmt.Sprintf("unknown assertion kind %q;", e.key.Value)
			if s := spec.Suggest(e.key.Value, KindNames); s != "" {
				msg += fmt.Sprintf(" did you mean %q?", s)
			}
			p.errorf(p.at(e.key), "%s valid kinds: %s", msg, strings.Join(KindNames, ", "))
			return a, false
		}
		p.errorf(a.Pos, "this expect entry names no assertion; start it with one of %s", strings.Join(KindNames, ", "))
		return a, false
	}
	a.Kind = kindEntry.key.Value
	a.Pos = p.at(kindEntry.key)
	mods := kinds[a.Kind]
	p.kindValue(&a, kindEntry.val)
	for _, e := range pairs {
		if e.key == kindEntry.key {
			continue
		}
		if _, isKind := kinds[e.key.Value]; isKind {
			continue // reported above
		}
		if !slices.Contains(mods, e.key.Value) {
			in := a.Kind + " assertion"
			if len(mods) == 0 {
				p.errorf(p.at(e.key), "unknown key %q in %s; %s takes no other keys", e.key.Value, in, a.Kind)
			} else {
				p.unknownKey(e.key, in, mods)
			}
			continue
		}
		a.keyPos[e.key.Value] = p.at(e.key)
		p.modifier(&a, e.key.Value, e.val)
	}
	a.Text = summarize(n)
	return a, len(p.errs) == errs
}

func isModifier(key string) bool {
	for _, mods := range kinds {
		if slices.Contains(mods, key) {
			return true
		}
	}
	return false
}

// kindValue reads the value of the kind key itself.
func (p *yparser) kindValue(a *Assertion, v *yaml.Node) {
	label := a.Kind
	switch a.Kind {
	case KindServicesReady, KindTasksSucceeded, KindServiceFails, KindTaskFails, KindEventsInOrder:
		a.Names, _ = p.strs(v, label)
	case KindServiceRestarted:
		if s, ok := p.str(v, label); ok {
			a.Names = []string{s}
		}
		a.Times = 1
	case KindEvent, KindConsole, KindConsoleNot:
		a.Pattern, _ = p.regexp(v, label)
	case KindTCP:
		n, ok := p.integer(v, label, 1, 65535, "a guest port 1-65535")
		if ok {
			a.Port = int(n)
		}
	case KindExec:
		if s, ok := p.str(v, label); ok {
			if strings.TrimSpace(s) == "" {
				p.errorf(p.at(v), "exec: the command is empty; write the command line to run in the guest")
			}
			a.Cmd = s
		}
		zero := 0
		a.Status = &zero
	case KindFile:
		if s, ok := p.str(v, label); ok {
			if !strings.HasPrefix(s, "/") {
				p.errorf(p.at(v), "file: %q is not an absolute guest path; start it with /", s)
			}
			a.Path = s
		}
	case KindShutdown:
		if s, ok := p.str(v, label); ok && s != "graceful" {
			p.errorf(p.at(v), "shutdown: %q is not valid; valid values: graceful", s)
		}
		a.Grace = 10 * time.Second
	case KindHaltsItself, KindRebootsItself:
		if b, ok := p.boolean(v, label); ok && !b {
			p.errorf(p.at(v), "%s: only true makes sense; remove the entry instead", label)
		}
	case KindAllowConsole:
		a.Allow = p.regexps(v, label)
	}
}

// modifier reads one of the kind's other keys.
func (p *yparser) modifier(a *Assertion, key string, v *yaml.Node) {
	label := a.Kind + "." + key
	switch key {
	case "timeout":
		a.Timeout, _ = p.duration(v, label)
	case "grace":
		a.Grace, _ = p.duration(v, label)
	case "times":
		if n, ok := p.integer(v, label, 1, 1000, "a count from 1"); ok {
			a.Times = int(n)
		}
	case "status":
		if n, ok := p.integer(v, label, 0, 255, "an exit status 0-255"); ok {
			s := int(n)
			a.Status = &s
		}
	case "send":
		a.Send, _ = p.str(v, label)
	case "stdin":
		a.Stdin, _ = p.str(v, label)
	case "expect":
		a.Pattern, _ = p.regexp(v, label)
	case "stdout":
		a.Stdout, _ = p.regexp(v, label)
	case "stderr":
		a.Stderr, _ = p.regexp(v, label)
	case "contains":
		a.Contains, _ = p.regexp(v, label)
	case "exists":
		a.Exists, _ = p.boolean(v, label)
	case "type":
		valid := []string{"file", "dir", "symlink", "other"}
		if s, ok := p.str(v, label); ok {
			if !slices.Contains(valid, s) {
				msg := fmt.Sprintf("%s: %q is not valid;", label, s)
				if g := spec.Suggest(s, valid); g != "" {
					msg += fmt.Sprintf(" did you mean %q?", g)
				}
				p.errorf(p.at(v), "%s valid values: %s", msg, strings.Join(valid, ", "))
			}
			a.Type = s
		}
	case "mode":
		// 0444 in YAML 1.1 would be an octal int, in 1.2 a decimal: take
		// the text as written either way.
		if p.scalar(v, label, "an octal mode such as \"0644\"") {
			m, err := strconv.ParseUint(v.Value, 8, 32)
			if err != nil || m > 0o7777 {
				p.errorf(p.at(v), "%s: %q is not an octal mode; write it like \"0644\"", label, v.Value)
			} else {
				a.Mode = fmt.Sprintf("%04o", m)
			}
		}
	case "uid", "gid":
		if n, ok := p.integer(v, label, 0, 1<<32-1, "a numeric id"); ok {
			id := int(n)
			if key == "uid" {
				a.UID = &id
			} else {
				a.GID = &id
			}
		}
	case "size":
		if n, ok := p.integer(v, label, 0, 1<<62, "a size in bytes"); ok {
			a.Size = &n
		}
	case "target":
		if s, ok := p.str(v, label); ok {
			a.Target = &s
		}
	case "shutdown_tasks":
		a.ShutdownTasks, _ = p.strs(v, label)
	}
}

// summarize renders a flow-style one-liner of an entry for reports.
func summarize(n *yaml.Node) string {
	var parts []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		parts = append(parts, n.Content[i].Value+": "+flow(spec.ResolveNode(n.Content[i+1])))
	}
	return strings.Join(parts, ", ")
}

func flow(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		var items []string
		for _, it := range n.Content {
			items = append(items, flow(spec.ResolveNode(it)))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case yaml.MappingNode:
		return "{" + summarize(n) + "}"
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || strings.ContainsAny(n.Value, ":#,[]{}\n") {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// CheckSpec cross-checks the names a test file uses against the spec it
// tests: services, tasks and the network a tcp assertion needs. Problems are
// reported at the test file's positions.
func (tf *TestFile) CheckSpec(s *spec.Spec) error {
	p := &yparser{file: tf.File}
	var services, onboot, onshut []string
	for _, sv := range s.Services {
		services = append(services, sv.Name)
	}
	for _, t := range s.Onboot {
		onboot = append(onboot, t.Name)
	}
	for _, t := range s.Onshut {
		onshut = append(onshut, t.Name)
	}
	check := func(a Assertion, names []string, valid []string, what string) {
		for _, n := range names {
			if slices.Contains(valid, n) {
				continue
			}
			msg := fmt.Sprintf("%s: %s %q is not in %s;", a.Kind, what, n, s.File)
			if g := spec.Suggest(n, valid); g != "" {
				msg += fmt.Sprintf(" did you mean %q?", g)
			}
			if len(valid) == 0 {
				p.errorf(a.Pos, "%s the spec has none", msg)
			} else {
				p.errorf(a.Pos, "%s valid: %s", msg, strings.Join(valid, ", "))
			}
		}
	}
	for _, a := range tf.Expect {
		switch a.Kind {
		case KindServicesReady, KindServiceFails, KindServiceRestarted:
			check(a, a.Names, services, "service")
		case KindTasksSucceeded:
			check(a, a.Names, slices.Concat(onboot, onshut), "task")
		case KindTaskFails:
			check(a, a.Names, onboot, "onboot task")
		case KindShutdown:
			check(a, a.ShutdownTasks, onshut, "onshutdown task")
		case KindTCP:
			if s.Network.Mode != spec.NetworkAuto && !tf.SSH {
				p.errorf(a.Pos, "tcp: the host reaches guest ports through the guest's network, and %s has none; add `network: {mode: auto}` to it", s.File)
			}
		}
	}
	if len(tf.Publish) > 0 && s.Network.Mode != spec.NetworkAuto && !tf.SSH {
		p.errorf(tf.publishPos, "publish: %s has no network; add `network: {mode: auto}` to it", s.File)
	}
	return p.err()
}

// publishedPorts is every guest port the test needs forwarded: publish:
// plus each tcp assertion's port.
func (tf *TestFile) publishedPorts() []int {
	ports := slices.Clone(tf.Publish)
	for _, a := range tf.Expect {
		if a.Kind == KindTCP && !slices.Contains(ports, a.Port) {
			ports = append(ports, a.Port)
		}
	}
	return ports
}

// expected lists the names an assertion of kind expects to fail.
func (tf *TestFile) expected(kind string) []string {
	var out []string
	for _, a := range tf.Expect {
		if a.Kind == kind {
			out = append(out, a.Names...)
		}
	}
	return out
}

func (tf *TestFile) has(kind string) bool {
	return slices.ContainsFunc(tf.Expect, func(a Assertion) bool { return a.Kind == kind })
}
