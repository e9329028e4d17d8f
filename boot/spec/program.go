package spec

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var taskKeys = keySet{in: "task", valid: []string{
	"name", "go", "binary", "command", "image", "install", "args", "env", "dir", "user", "group",
	"timeout", "sandbox", "capabilities", "readonly", "binds", "net", "resources", "seccomp",
}}

var serviceKeys = keySet{
	in: "service",
	valid: []string{
		"name", "go", "binary", "command", "image", "install", "args", "env", "dir", "user", "group",
		"restart", "ready", "sandbox", "capabilities", "readonly", "binds", "net", "resources", "seccomp",
	},
	// A service runs until stopped; the only deadline is for becoming ready.
	hints: map[string]string{"timeout": "ready.timeout"},
}

// Defaults for tasks and services.
const (
	defaultTaskTimeout   = 30 * time.Second
	defaultBackoff       = 100 * time.Millisecond
	defaultMaxBackoff    = 5 * time.Second
	defaultReadyTimeout  = 10 * time.Second
	defaultReadyInterval = 10 * time.Millisecond
)

var (
	unitName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// The accounts kitrun's minimal /etc/passwd and /etc/group define.
var (
	userNames  = []string{"root", "nobody"}
	groupNames = []string{"root", "nobody", "nogroup"}
)

// tasks parses the onboot or onshutdown list (key); names are unique
// within each list.
func (p *parser) tasks(top *fields, key string) []Task {
	n := top.value(key)
	if n == nil {
		return nil
	}
	ks := taskKeys
	ks.in = key + " task"
	names := map[string]Pos{}
	var tasks []Task
	for _, item := range p.items(n, key, true) {
		f := p.fields(item, ks, "")
		t := Task{
			Name:    p.unitName(f, names),
			Program: p.program(f),
			Timeout: defaultTaskTimeout,
			Pos:     p.at(item),
		}
		if d, ok := f.duration("timeout"); ok {
			t.Timeout = d
		}
		tasks = append(tasks, t)
	}
	return tasks
}

func (p *parser) services(top *fields) []Service {
	n := top.value("services")
	if n == nil {
		return nil
	}
	names := map[string]Pos{}
	var services []Service
	for _, item := range p.items(n, "services", true) {
		f := p.fields(item, serviceKeys, "")
		svc := Service{
			Name:    p.unitName(f, names),
			Program: p.program(f),
			Restart: p.restart(f),
			Ready:   p.ready(f),
			Pos:     p.at(item),
		}
		p.sandboxedProbe(f, svc)
		services = append(services, svc)
	}
	return services
}

// unitName returns the required name of a task or service, reporting
// names already in seen.
func (p *parser) unitName(f *fields, seen map[string]Pos) string {
	if !f.require("name") {
		return ""
	}
	name, ok := f.str("name")
	if !ok {
		return ""
	}
	if !unitName.MatchString(name) {
		f.errorf("name", "%q is not a valid name; use lowercase letters, digits, '_' and '-', starting with a letter or digit", name)
		return name
	}
	if first, dup := seen[name]; dup {
		p.errorf(f.keyPos("name"), "duplicate %s name %q (first defined at %s)", f.in, name, first)
		return name
	}
	seen[name] = f.keyPos("name")
	return name
}

// program parses the keys tasks and services share.
func (p *parser) program(f *fields) Program {
	prog := Program{Dir: "/", User: "root", Pos: p.at(f.node)}
	kind := f.exactlyOne("program", "go", "binary", "command", "image")
	switch kind {
	case "image":
		if src, ok := p.image(f); ok {
			prog.Image, prog.ImagePos = &src, f.pos("image")
		}
		// The image's config says these unless the spec does.
		prog.Dir, prog.User = "", ""
	case "go":
		prog.Go = p.goPackage(f)
	case "binary":
		prog.Binary = p.binary(f)
	case "command":
		prog.Command, _ = f.guestPath("command", false)
	}
	prog.Install = p.install(f, kind, cmp.Or(prog.Go, prog.Binary))
	prog.Args, _, _ = f.strs("args")
	prog.Env = p.env(f)
	if d, ok := f.guestPath("dir", true); ok {
		prog.Dir = d
	}
	if u, ok := f.account("user", userNames); ok {
		prog.User = u
	}
	// Running as a user with root's group would be a surprising privilege.
	prog.Group = prog.User
	if g, ok := f.account("group", groupNames); ok {
		prog.Group = g
	}
	prog.Sandbox = p.sandbox(f, kind == "image")
	return prog
}

// goPackage returns the absolute directory of a Go package to build.
func (p *parser) goPackage(f *fields) string {
	dir, ok := f.hostDir("go", "a Go package directory")
	if !ok {
		return ""
	}
	if !hasGoFiles(dir) {
		f.hostError("go", "has no .go files; expected a Go package directory")
		return ""
	}
	return dir
}

// hasGoFiles reports whether dir has a non-test .go file, the minimum for
// `go build` to produce a program.
func hasGoFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			return true
		}
	}
	return false
}

// binary returns the absolute path of a host executable to copy.
func (p *parser) binary(f *fields) string {
	path, fi, ok := f.hostFile("binary", "an executable file")
	if !ok {
		return ""
	}
	if fi.Mode().Perm()&0o111 == 0 {
		f.hostError("binary", "is not executable (mode %#o); run chmod +x on it", fi.Mode().Perm())
		return ""
	}
	return path
}

// install returns where a go or binary program lands in the image:
// the install key, or /usr/bin/<base name of source>. It claims that path,
// so two different programs (or a program and a file) cannot collide.
func (p *parser) install(f *fields, kind, source string) string {
	if f.has("install") && kind != "go" && kind != "binary" {
		p.errorf(f.keyPos("install"), "install is only valid with go or binary; a command is already in the image at its path")
		return ""
	}
	if source == "" {
		return ""
	}
	if !f.has("install") {
		path := "/usr/bin/" + filepath.Base(source)
		p.claim(path, claim{pos: p.at(f.node), source: source})
		return path
	}
	path, ok := f.guestPath("install", false)
	if ok {
		p.claim(path, claim{pos: f.pos("install"), source: source})
	}
	return path
}

func (p *parser) env(f *fields) map[string]string {
	n := f.value("env")
	if n == nil || IsNullNode(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.typeError(n, f.label("env"), "a mapping of variable names to strings")
		return nil
	}
	env := map[string]string{}
	p.entries(n, f.label("env"), func(k, v *yaml.Node) {
		switch {
		case !envName.MatchString(k.Value):
			p.errorf(p.at(k), "%s: %q is not a valid variable name; use letters, digits and '_', not starting with a digit", f.label("env"), k.Value)
		case v.Kind != yaml.ScalarNode || IsNullNode(v):
			p.typeError(v, f.label("env")+"."+k.Value, "a string")
		default:
			env[k.Value] = v.Value
		}
	})
	return env
}

// account returns a user or group: one of names, or a numeric id. Only
// accounts the image defines are accepted, so a typo fails here and not
// when the program starts.
func (f *fields) account(key string, names []string) (string, bool) {
	const maxID = 65534 // 65535 is (uid_t)-1, "no change" to the kernel
	expected := fmt.Sprintf("%s or a number 0..%d", strings.Join(names, ", "), maxID)
	n, ok := f.scalar(key, expected)
	if !ok {
		return "", false
	}
	if slices.Contains(names, n.Value) {
		return n.Value, true
	}
	if id, err := strconv.Atoi(n.Value); err == nil {
		if id < 0 || id > maxID {
			f.errorf(key, "%s is out of range; use %s", n.Value, expected)
			return "", false
		}
		return strconv.Itoa(id), true
	}
	msg := fmt.Sprintf("%q is not valid;", n.Value)
	if s := Suggest(n.Value, names); s != "" {
		msg += fmt.Sprintf(" did you mean %q?", s)
	}
	f.errorf(key, "%s valid values: %s", msg, expected)
	return "", false
}

// sandboxedProbe refuses probes kitinit cannot run against a sandboxed
// service: an exec probe would run outside the sandbox, and a tcp probe
// cannot reach a service in its own network namespace.
func (p *parser) sandboxedProbe(f *fields, s Service) {
	sb, r := s.Program.Sandbox, s.Ready
	if sb == nil || r == nil {
		return
	}
	switch {
	case len(r.Exec) > 0:
		p.errorf(r.Pos, "ready: an exec probe would run outside the sandbox of %s; use a log, file, unix or tcp probe", s.Name)
	case r.TCP != "" && sb.Net == NetNew:
		p.errorf(r.Pos, "ready: a tcp probe cannot reach %s in its own network namespace (net: new); use a log, file or unix probe, or net: host", s.Name)
	}
}
