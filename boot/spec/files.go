package spec

import (
	"io/fs"
	"strconv"
	"strings"
)

var fileKeys = keySet{in: "file", valid: []string{
	"path", "contents", "source", "directory", "symlink", "mode", "uid", "gid",
}}

const idRange = "a number 0..65534"

func (p *parser) files(top *fields) []File {
	n := top.value("files")
	if n == nil {
		return nil
	}
	var files []File
	for _, item := range p.items(n, "files", true) {
		files = append(files, p.file1(p.fields(item, fileKeys, "")))
	}
	return files
}

// file1 parses one entry of files.
func (p *parser) file1(f *fields) File {
	fl := File{Mode: 0o644, Pos: p.at(f.node)}
	if f.require("path") {
		if path, ok := f.guestPath("path", false); ok {
			fl.Path = path
			p.claim(path, claim{pos: f.pos("path"), file: true})
		}
	}
	// `directory: false` next to another kind only says "not a directory".
	if f.has("contents") || f.has("source") || f.has("symlink") {
		if d, ok := f.boolean("directory"); ok && !d {
			f.forget("directory")
		}
	}
	switch f.exactlyOne("content", "contents", "source", "directory", "symlink") {
	case "contents":
		if n := f.value("contents"); IsNullNode(n) {
			p.errorf(f.pos("contents"), `contents must be a string, found an empty value; use contents: "" for an empty file`)
		} else if s, ok := f.str("contents"); ok {
			fl.Contents = &s
		}
	case "source":
		fl.Source, _, _ = f.hostFile("source", "a regular file")
	case "directory":
		fl.Mode = 0o755
		if d, ok := f.boolean("directory"); ok && !d {
			f.errorf("directory", "false describes nothing; use directory: true, or one of contents, source, symlink")
		}
		fl.Directory = true
	case "symlink":
		fl.Mode = 0o777
		if target, ok := f.str("symlink"); ok && target == "" {
			f.errorf("symlink", "must not be empty; give the link's target path")
		} else {
			fl.Symlink = target
		}
		// Linux ignores a symlink's permissions; accepting mode would
		// promise something that cannot happen.
		if f.has("mode") {
			p.errorf(f.keyPos("mode"), "mode is not valid for a symlink; symlinks are always 0777")
		}
	}
	if f.has("mode") && !f.has("symlink") {
		if m, ok := p.mode(f); ok {
			fl.Mode = m
		}
	}
	fl.UID, _ = f.integer("uid", 0, 65534, idRange)
	fl.GID, _ = f.integer("gid", 0, 65534, idRange)
	return fl
}

// mode parses a permission mode: 0644, 0o644, "0644" (octal) or 420
// (decimal, as YAML reads a number without a leading zero).
func (p *parser) mode(f *fields) (uint32, bool) {
	const expected = "an octal file mode like 0644"
	n, ok := f.scalar("mode", expected)
	if !ok {
		return 0, false
	}
	if tag := n.ShortTag(); tag != "!!int" && tag != "!!str" {
		p.typeError(n, f.label("mode"), expected)
		return 0, false
	}
	s := n.Value
	digits, base := s, 10
	switch {
	case strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0O"):
		digits, base = s[2:], 8
	case len(s) > 1 && s[0] == '0':
		digits, base = s[1:], 8
	}
	v, err := strconv.ParseUint(digits, base, 32)
	switch {
	case err != nil:
		f.errorf("mode", "%q is not a file mode; use octal like 0644 (rw-r--r--) or 0755 (rwxr-xr-x)", s)
		return 0, false
	case v > 0o7777:
		f.errorf("mode", "%s is out of range; use at most 07777", s)
		return 0, false
	}
	// `mode: 644` is decimal 644, i.e. 01204 with the sticky bit: almost
	// certainly meant as 0644. Decimal modes with only octal digits above
	// 0777 are rejected so that mistake cannot reach the image.
	if base == 10 && v > 0o777 {
		if oct, err := strconv.ParseUint(s, 8, 32); err == nil && oct <= 0o7777 {
			f.errorf("mode", "%s is decimal (0%o in octal); write 0%s for %s", s, v, s, fs.FileMode(oct & 0o777).String()[1:])
			return 0, false
		}
	}
	return uint32(v), true
}

// claim is something placed at a path in the image: a file, or a program's
// install path.
type claim struct {
	pos    Pos
	file   bool
	source string // host source of a program
}

func (c claim) String() string {
	if c.file {
		return "the path of the file at " + c.pos.String()
	}
	return "the install path of the program at " + c.pos.String()
}

// claim records that c occupies guest path, reporting a clash with an
// earlier claim: the assembler would otherwise silently let one overwrite
// the other. Installing the same program twice at one path is fine.
func (p *parser) claim(path string, c claim) {
	if p.claims == nil {
		p.claims = map[string]claim{}
	}
	prev, taken := p.claims[path]
	switch {
	case !taken:
		p.claims[path] = c
	case c.source != "" && c.source == prev.source:
	case c.file && prev.file:
		p.errorf(c.pos, "duplicate file path %q (first defined at %s)", path, prev.pos)
	case c.file:
		p.errorf(c.pos, "path %q is also %s; use a different path", path, prev)
	default:
		p.errorf(c.pos, "install path %q is also %s; set install: to a different path", path, prev)
	}
}
