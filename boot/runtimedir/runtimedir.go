// Package runtimedir owns the private directory each kitrun process keeps
// what lives only as long as it does: QEMU's sockets, initrds made for one
// boot, SSH client keys, test work directories, Go build outputs before they
// reach the cache. Everything sits under one per-user base,
//
//	$XDG_RUNTIME_DIR/kitrun            (when XDG_RUNTIME_DIR is set)
//	$TMPDIR/kitrun-UID                 (otherwise)
//
// both 0700 and checked to belong to the user, and each process gets its
// own subdirectory named by its procid ("PID-START"), so that a pid the
// kernel has reused is not mistaken for the owner. The first use in a
// process sweeps the directories of processes that are gone (kill -9, a
// crash, a power cut): after any kitrun start, nothing a dead kitrun left
// here survives, and a live process's directory is never touched.
//
// Commands whose children may outlive them (a test group's fixture daemon)
// are started with StartGroup, in a process group of their own that is
// recorded here: a sweep of a dead owner's directory kills those groups too.
package runtimedir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/procid"
)

// groupsFile lists the process groups a process adopted, one procid of a
// group leader per line.
const groupsFile = "pgroups"

// Base is the per-user directory holding every process's runtime
// directory. It is not created here.
func Base() string {
	if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) {
		if st, err := os.Stat(x); err == nil && st.IsDir() {
			return filepath.Join(x, "kitrun")
		}
	}
	if runtime.GOOS == "windows" { // the temporary directory is the user's own
		return filepath.Join(os.TempDir(), "kitrun")
	}
	return filepath.Join(os.TempDir(), "kitrun-"+strconv.Itoa(os.Getuid()))
}

// root is one base directory and this process's directory in it.
type root struct {
	base string
	self procid.ID

	mu     sync.Mutex
	dir    string // made and swept; "" until the first Dir
	groups []procid.ID
}

var def = sync.OnceValue(func() *root { return &root{base: Base(), self: procid.Self()} })

// Dir returns this process's runtime directory, making it on first use
// (after a sweep of the base).
func Dir() (string, error) { return def().Dir() }

// MkdirTemp makes a new private directory in this process's runtime
// directory, named pattern followed by a random string. The caller removes
// it when done; if the process dies first, the next sweep does.
func MkdirTemp(pattern string) (string, error) { return def().MkdirTemp(pattern) }

// Sweep removes the runtime directories of processes that are gone, kills
// the process groups they adopted and ends what they recorded (Record). It
// returns the directories removed, and an error naming the records it
// could not end (their directories stay for the next sweep).
func Sweep() ([]string, error) { return def().Sweep() }

// Remove removes this process's runtime directory with everything in it;
// kitrun's main calls it on the way out. A later Dir makes a new one.
func Remove() error { return def().Remove() }

func (r *root) Dir() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ensure()
}

func (r *root) ensure() (string, error) {
	if r.dir != "" {
		return r.dir, nil
	}
	if err := ensurePrivate(r.base); err != nil {
		return "", fmt.Errorf("kitrun's runtime directory: %w", err)
	}
	r.sweep() // what it cannot end waits for a sweep that reports it
	dir := filepath.Join(r.base, r.self.String())
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		// Only a process with our pid and start time made it: one of an
		// earlier boot, when the base outlives reboots.
		if err = os.RemoveAll(dir); err == nil {
			err = os.Mkdir(dir, 0o700)
		}
	}
	if err != nil {
		return "", fmt.Errorf("kitrun's runtime directory: %w", err)
	}
	r.dir = dir
	return dir, nil
}

func (r *root) MkdirTemp(pattern string) (string, error) {
	dir, err := r.Dir()
	if err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, pattern)
}

func (r *root) Sweep() ([]string, error) {
	if err := ensurePrivate(r.base); err != nil {
		return nil, fmt.Errorf("kitrun's runtime directory: %w", err)
	}
	removed, err := r.sweep()
	return removed, err
}

// sweep removes the directories whose owner is gone, once it has killed
// the process groups and ended the records (see Record) in them. Names
// that are not a procid are not kitrun's and are left alone. The error
// tells of records that could not be ended: their directories stay.
func (r *root) sweep() ([]string, error) {
	ents, err := os.ReadDir(r.base)
	if err != nil {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		owner, ok := procid.Parse(e.Name())
		if !ok || !e.IsDir() || owner == r.self || owner.Running() {
			continue
		}
		dir := filepath.Join(r.base, e.Name())
		for _, leader := range readGroups(dir) {
			killGroup(leader)
		}
		if done, err := reapRecords(dir); !done {
			errs = append(errs, fmt.Errorf("left by kitrun process %s, which is gone: %w", e.Name(), err))
			continue
		}
		if os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed, errors.Join(errs...)
}

func (r *root) Remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir == "" {
		return nil
	}
	err := os.RemoveAll(r.dir)
	r.dir, r.groups = "", nil
	return err
}

func (r *root) writeGroups(dir string) error {
	var b bytes.Buffer
	for _, g := range r.groups {
		fmt.Fprintln(&b, g)
	}
	return atomicfile.Write(filepath.Join(dir, groupsFile), b.Bytes(), 0o600)
}

func readGroups(dir string) []procid.ID {
	b, err := os.ReadFile(filepath.Join(dir, groupsFile))
	if err != nil {
		return nil
	}
	var ids []procid.ID
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if id, ok := procid.Parse(sc.Text()); ok {
			ids = append(ids, id)
		}
	}
	return ids
}
