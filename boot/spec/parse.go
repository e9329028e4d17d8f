package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kitrun/kitrun/boot/disk"
	"go.yaml.in/yaml/v3"
)

var specKeys = keySet{in: "spec", valid: []string{
	"version", "name", "hostname", "init", "kernel", "network",
	"onboot", "onshutdown", "services", "files", "ssh", "format",
}}

// Parse reads, parses and validates the spec file at path.
func Parse(path string) (*Spec, error) {
	data, err := ReadYAMLFile(path)
	if err != nil {
		return nil, err
	}
	return ParseBytes(path, data)
}

// ParseBytes parses and validates spec data read from file. file is used in
// messages as given, and its directory anchors relative host paths. On
// failure the error is an *Errors listing every problem found.
func ParseBytes(file string, data []byte) (*Spec, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	p := &parser{file: file, dir: filepath.Dir(abs)}
	root := p.document(data)
	if root == nil {
		return nil, NewErrors(p.errs)
	}
	s := p.spec(root)
	s.File, s.Dir = abs, p.dir
	if err := NewErrors(p.errs); err != nil {
		return nil, err
	}
	return s, nil
}

// document decodes data to the root mapping node, or returns nil after
// reporting why it cannot.
func (p *parser) document(data []byte) *yaml.Node {
	root, errs := DecodeYAML(p.file, data)
	p.errs = append(p.errs, errs...)
	if root == nil {
		if len(errs) == 0 {
			p.errorf(Pos{File: p.file, Line: 1, Column: 1}, "spec is empty; it must be a mapping with at least version: 1 and kernel:")
		}
		return nil
	}
	root = ResolveNode(root)
	if root.Kind != yaml.MappingNode {
		p.typeError(root, "spec", "a mapping with at least version: 1 and kernel:")
		return nil
	}
	return root
}

func (p *parser) spec(root *yaml.Node) *Spec {
	f := p.fields(root, specKeys, "")
	s := &Spec{Init: "kitinit"}
	f.require("version", "kernel")
	p.version(f, s)
	p.names(f, s)
	if f.has("init") {
		s.Init, _ = f.enum("init", []string{"kitinit"})
	}
	if kf, ok := f.mapping("kernel", kernelKeys); ok {
		s.Kernel = p.kernel(kf)
	}
	s.Network = p.network(f)
	s.Onboot = p.tasks(f, "onboot")
	s.Onshut = p.tasks(f, "onshutdown")
	s.Services = p.services(f)
	s.Files = p.files(f)
	s.SSH = p.ssh(f)
	s.Formats, s.FormatsPos = p.formats(f)
	return s
}

// formats reads `format:`, one disk format or a list of them, each one
// boot/disk knows.
func (p *parser) formats(f *fields) ([]string, []Pos) {
	n := f.value("format")
	if n == nil || IsNullNode(n) {
		return nil, nil
	}
	var names []string
	var pos []Pos
	if n.Kind == yaml.ScalarNode {
		names, pos = []string{n.Value}, []Pos{p.at(n)}
	} else {
		names, pos, _ = f.strs("format")
	}
	valid := disk.Names()
	var outNames []string
	var outPos []Pos
	for i, name := range names {
		if _, err := disk.Lookup(name); err != nil {
			msg := fmt.Sprintf("format: %q is not a disk format;", name)
			if s := Suggest(name, valid); s != "" {
				msg += fmt.Sprintf(" did you mean %q?", s)
			}
			p.errorf(pos[i], "%s valid: %s", msg, strings.Join(valid, ", "))
			continue
		}
		if !slices.Contains(outNames, name) {
			outNames, outPos = append(outNames, name), append(outPos, pos[i])
		}
	}
	return outNames, outPos
}

func (p *parser) version(f *fields, s *Spec) {
	n := f.value("version")
	if n == nil {
		return
	}
	var v int
	if n.ShortTag() != "!!int" || n.Decode(&v) != nil || v != 1 {
		p.errorf(p.at(n), "version must be 1")
		return
	}
	s.Version = v
}

var (
	imageName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
)

const (
	imageNameRule = "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
	hostnameRule  = "use letters, digits and '-' in dot-separated labels, at most 63 characters"
)

// names sets Name and Hostname, defaulting them from the file name. A
// default that is not valid is reported where it came from, since the fix
// is to set the key explicitly.
func (p *parser) names(f *fields, s *Spec) {
	nameOK := p.name(f, s)
	if f.has("hostname") {
		h, ok := f.str("hostname")
		if ok && !validHostname(h) {
			f.errorf("hostname", "%q is not a valid hostname; %s", h, hostnameRule)
		}
		s.Hostname = h
		return
	}
	if !nameOK {
		return
	}
	// Image names may contain '_', hostnames may not.
	s.Hostname = s.Name
	if !validHostname(s.Name) {
		pos := p.at(f.node)
		if f.has("name") {
			pos = f.pos("name")
		}
		p.errorf(pos, "hostname defaults to name %q, which is not a valid hostname; set hostname: and %s", s.Name, hostnameRule)
	}
}

func (p *parser) name(f *fields, s *Spec) bool {
	if f.has("name") {
		name, ok := f.str("name")
		if ok && !imageName.MatchString(name) {
			f.errorf("name", "%q is not a valid name; %s", name, imageNameRule)
			return false
		}
		s.Name = name
		return ok
	}
	base := filepath.Base(p.file)
	s.Name = strings.TrimSuffix(base, filepath.Ext(base))
	if !imageName.MatchString(s.Name) {
		p.errorf(p.at(f.node), "name defaults to the file name %q, which is not a valid name; set name: and %s", s.Name, imageNameRule)
		return false
	}
	return true
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 63 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabel.MatchString(label) {
			return false
		}
	}
	return true
}

var sshKeys = keySet{in: "ssh", valid: []string{"enabled", "port"}}

// ssh accepts `ssh: true` as shorthand for the mapping form. Writing the
// mapping at all means SSH is wanted, so enabled defaults to true there.
func (p *parser) ssh(f *fields) SSH {
	c := SSH{Port: 22}
	n := f.value("ssh")
	if n == nil {
		return c
	}
	c.Pos = p.at(n)
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool":
		c.Enabled, _ = f.boolean("ssh")
	case n.Kind == yaml.MappingNode:
		sf := p.fields(n, sshKeys, "ssh.")
		c.Enabled = true
		if v, ok := sf.boolean("enabled"); ok {
			c.Enabled = v
		}
		if port, ok := sf.integer("port", 1, 65535, "a port number 1..65535"); ok {
			c.Port = port
		}
	default:
		p.typeError(n, "ssh", "true, false or a mapping with enabled and port")
	}
	return c
}
