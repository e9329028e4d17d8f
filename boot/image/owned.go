package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
)

// The names of the files kitrun writes in an image directory: the image's
// own, and those of the disk image formats, which register theirs (see
// RegisterFile). A directory holding anything else is not kitrun's to
// replace.
var (
	filesMu sync.Mutex
	files   = map[string]bool{KernelFile: true, InitrdFile: true, CmdlineFile: true, ManifestFile: true}
)

// RegisterFile adds name to the files kitrun writes in an image directory.
// Each output format that writes into an image directory registers its
// file name here (boot/disk does it for every format it registers).
func RegisterFile(name string) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		panic(fmt.Sprintf("image: RegisterFile(%q): not a plain file name", name))
	}
	filesMu.Lock()
	defer filesMu.Unlock()
	files[name] = true
}

// Files lists the names of the files kitrun may write in an image
// directory, sorted.
func Files() []string {
	filesMu.Lock()
	defer filesMu.Unlock()
	out := make([]string, 0, len(files))
	for n := range files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// IsFile says whether kitrun writes a file of this name in an image
// directory, or is (or was) writing one: a leftover temporary file of such
// a file counts too.
func IsFile(name string) bool {
	if base, ok := atomicfile.TempOf(name); ok {
		name = base
	}
	filesMu.Lock()
	defer filesMu.Unlock()
	return files[name]
}

// NotOursError says that a path a build would replace holds something kitrun
// did not write. The path is left untouched.
type NotOursError struct {
	Path string
	// Why says what is there.
	Why string
}

func (e *NotOursError) Error() string {
	return fmt.Sprintf("%s %s; kitrun replaces only an image it wrote and leaves this untouched: move it away, or build into another directory (-o DIR)", e.Path, e.Why)
}

// CheckReplaceable says whether a build may put a new image at dir. It may
// when nothing is there, when an empty directory is, or when dir is an image
// directory kitrun wrote: a manifest.json that is kitrun's (see isOurs) and
// nothing but regular files kitrun writes (Files). Anything else — a regular
// file, a link, another program's manifest.json, a file or directory kitrun
// did not write beside the image — gives a *NotOursError.
func CheckReplaceable(dir string) error {
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
		return &NotOursError{Path: dir, Why: "is a symbolic link, not an image directory"}
	case !st.IsDir():
		return &NotOursError{Path: dir, Why: "is a file, not an image directory"}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	var foreign []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !IsFile(e.Name()) {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			foreign = append(foreign, n)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &NotOursError{Path: dir, Why: "is a directory that is not empty and holds no kitrun manifest.json"}
	case err != nil:
		return err
	case !isOurs(b):
		return &NotOursError{Path: dir, Why: "holds a manifest.json that is not a kitrun image manifest"}
	case len(foreign) > 0:
		return &NotOursError{Path: dir, Why: "holds files kitrun did not write (" + strings.Join(clip(foreign, 5), ", ") + ")"}
	}
	return nil
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// isOurs says whether a manifest.json is one kitrun wrote: it says so
// (kind), or, from before the kind field, it has the shape only kitrun's
// has: schema version 1, an architecture kitrun knows, SHA-256 digests of
// the kernel and the initramfs, and the list of initramfs entries.
func isOurs(b []byte) bool {
	var m struct {
		Kind    *string         `json:"kind"`
		Version int             `json:"version"`
		Arch    string          `json:"arch"`
		Kernel  Blob            `json:"kernel"`
		Initrd  Initrd          `json:"initrd"`
		Files   json.RawMessage `json:"files"`
	}
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	if m.Kind != nil {
		return *m.Kind == ManifestKind
	}
	_, err := arch.Lookup(m.Arch)
	return m.Version == 1 && err == nil && m.Arch != "" && hexDigest.MatchString(m.Kernel.SHA256) &&
		hexDigest.MatchString(m.Initrd.SHA256) && len(m.Files) > 0 && m.Files[0] == '['
}

func clip(l []string, n int) []string {
	if len(l) <= n {
		return l
	}
	return append(l[:n:n], fmt.Sprintf("and %d more", len(l)-n))
}
