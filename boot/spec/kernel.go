package spec

import (
	"regexp"
	"strings"
)

var kernelKeys = keySet{in: "kernel", valid: []string{
	"package", "deb", "image", "modules_dir", "cmdline", "modules",
}}

var (
	debPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

func (p *parser) kernel(f *fields) Kernel {
	k := Kernel{Pos: p.at(f.node)}
	switch f.exactlyOne("source", "package", "deb", "image") {
	case "package":
		if name, ok := f.str("package"); ok {
			if debPackage.MatchString(name) {
				k.Package = name
			} else {
				f.errorf("package", "%q is not a Debian package name; use lowercase letters, digits, '+', '-' and '.', like linux-image-cloud", name)
			}
		}
	case "deb":
		k.Deb, _, _ = f.hostFile("deb", "a linux-image .deb file")
	case "image":
		k.Image, _, _ = f.hostFile("image", "a kernel image file (vmlinuz)")
	}
	if f.has("modules_dir") {
		// Packages and debs carry their own modules; a second tree would be
		// ambiguous.
		if f.has("image") {
			k.ModulesDir, _ = f.hostDir("modules_dir", "a lib/modules/<version> directory")
		} else {
			f.p.errorf(f.keyPos("modules_dir"), "kernel.modules_dir is only valid with kernel.image; packages and debs bring their own modules")
		}
	}
	if f.has("cmdline") {
		k.Cmdline, _ = f.str("cmdline")
	}
	k.Modules, k.ModulesPos = p.modules(f)
	return k
}

// modules returns the module list with each item's position, so the
// assembler can point at the exact entry when a module does not exist.
func (p *parser) modules(f *fields) ([]string, []Pos) {
	names, pos, _ := f.strs("modules")
	var outNames []string
	var outPos []Pos
	first := map[string]Pos{}
	for i, name := range names {
		if !moduleName.MatchString(name) {
			p.errorf(pos[i], "kernel.modules: %q is not a module name; use letters, digits, '_' and '-', without path or .ko suffix", name)
			continue
		}
		// The kernel treats '-' and '_' in module names as the same
		// character, so virtio-net and virtio_net are one module.
		key := strings.ReplaceAll(name, "-", "_")
		if at, dup := first[key]; dup {
			p.errorf(pos[i], "kernel.modules: duplicate module %q (first listed at %s); remove one", name, at)
			continue
		}
		first[key] = pos[i]
		outNames = append(outNames, name)
		outPos = append(outPos, pos[i])
	}
	return outNames, outPos
}
