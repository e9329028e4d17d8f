// Package imagecache owns kitrun's cache of built images: the images that
// `kitrun run`, `bench` and `test` boot when given a spec. Each entry is a
// complete image directory named by the image's name and content digest
// (NAME-DIGEST, DIGEST the first 32 hex digits of image.Digest). It comes
// into being by the rename of a finished temporary directory and is never
// modified after, so two specs with the same name sit side by side, a
// rebuild never disturbs an image in use, and a reader never sees part of
// one.
//
// A process that uses an entry pins it until it exits: it holds a shared
// flock on NAME-DIGEST.lock beside the entry, and sets the entry
// directory's modification time, which is thus the entry's last use. Sweep
// removes an entry only when it can lock it exclusively (no live process
// has it pinned), when its last use is older than a grace period (which
// covers processes that read an image without pinning it), and when it is
// not the most recently used entry of its name (the image a spec last
// built stays until the spec changes).
package imagecache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/flock"
	"github.com/kitrun/kitrun/boot/image"
)

// DefaultGrace is how long an entry that nobody pins is kept after its last
// use when it is not the newest of its name.
const DefaultGrace = 24 * time.Hour

// digestLen is how many hex digits of the image digest name an entry.
const digestLen = 32

// lockWait bounds the wait for an entry's lock, which Sweep holds only
// while it removes that entry.
const lockWait = 30 * time.Second

// Cache is a directory of entries, one architecture's
// (CACHE/images/ARCH).
type Cache struct {
	Dir string
}

// New returns the cache in dir.
func New(dir string) *Cache { return &Cache{Dir: dir} }

// Path is the entry directory of the image name with the given digest.
func (c *Cache) Path(name, digest string) string {
	return filepath.Join(c.Dir, entryName(name, digest))
}

func entryName(name, digest string) string {
	if len(digest) > digestLen {
		digest = digest[:digestLen]
	}
	return name + "-" + digest
}

func lockPath(entry string) string { return entry + ".lock" }

// Get pins the entry of name and digest and loads it. A missing entry is
// an error that wraps fs.ErrNotExist; the pin is taken all the same, so
// that Put of the same entry is safe from Sweep.
func (c *Cache) Get(name, digest string) (*image.Image, error) {
	entry := c.Path(name, digest)
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if err := pin(entry); err != nil {
		return nil, err
	}
	if _, err := os.Stat(entry); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return load(entry, digest)
}

// Stage makes the temporary directory in which the caller builds the
// entry of name and digest; Put moves it into place.
func (c *Cache) Stage(name, digest string) (string, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", fmt.Errorf("image cache: %w", err)
	}
	return atomicfile.TempDir(c.Path(name, digest))
}

// Put moves the finished directory staged (from Stage, its files written
// durably) into place as the entry of name and digest, pins it and loads
// it. When another process put the same entry first, staged is removed and
// that entry is used: its content is the same.
func (c *Cache) Put(staged, name, digest string) (*image.Image, error) {
	defer os.RemoveAll(staged) // a no-op once renamed
	entry := c.Path(name, digest)
	if err := pin(entry); err != nil {
		return nil, err
	}
	if err := os.Chmod(staged, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if err := os.Rename(staged, entry); err != nil {
		if _, serr := os.Stat(entry); serr != nil {
			return nil, fmt.Errorf("image cache: %w", err)
		}
	} else if err := atomicfile.SyncDir(c.Dir); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return load(entry, digest)
}

// load reads an entry and checks that it is the image its name says.
func load(entry, digest string) (*image.Image, error) {
	now := time.Now()
	// The last use, for Sweep. Only the directory's times change.
	_ = os.Chtimes(entry, now, now)
	img, err := image.Load(entry)
	if err != nil {
		return nil, fmt.Errorf("image cache entry %s is damaged (%v); remove it and build again", entry, err)
	}
	if !strings.HasPrefix(img.Digest, digest[:min(len(digest), digestLen)]) {
		return nil, fmt.Errorf("image cache entry %s is damaged (its manifest's digest is %s); remove it and build again", entry, img.Digest)
	}
	return img, nil
}

// Pin pins the image directory dir until this process exits when it is an
// entry of an image cache, so that no sweep removes it while this process
// may still boot it (a supervisor that outlives the command that built the
// image, say). Any other directory is left alone: nil.
func Pin(dir string) error {
	if !entryRE.MatchString(filepath.Base(dir)) {
		return nil
	}
	if err := pin(dir); err != nil {
		return err
	}
	now := time.Now()
	if err := os.Chtimes(dir, now, now); err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	return nil
}

// The pins of this process, by entry: each a shared lock held until the
// process exits.
var (
	pinsMu sync.Mutex
	pins   = map[string]*flock.Lock{}
)

func pin(entry string) error {
	pinsMu.Lock()
	defer pinsMu.Unlock()
	if pins[entry] != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockWait)
	defer cancel()
	l, err := flock.Wait(ctx, lockPath(entry), flock.Shared, 0o644)
	if err != nil {
		return fmt.Errorf("image cache: %w", err)
	}
	pins[entry] = l
	return nil
}

// entryRE matches an entry's directory name: NAME-DIGEST.
var entryRE = regexp.MustCompile(`^([a-z0-9][a-z0-9._-]*)-([0-9a-f]{32})$`)

// Sweep removes the entries that no live process has pinned, that were last
// used more than grace ago and that are not the most recently used of their
// name; also lock files left without an entry, the temporary directories of
// builds whose process died, and image directories of older kitrun versions
// unchanged for longer than grace. It returns what it removed.
// Errors about single entries do not stop it; the first is returned.
func (c *Cache) Sweep(grace time.Duration) ([]string, error) {
	removed, err := atomicfile.SweepStale(c.Dir)
	ents, rerr := os.ReadDir(c.Dir)
	if rerr != nil {
		if errors.Is(rerr, fs.ErrNotExist) {
			return removed, err
		}
		return removed, rerr
	}
	type entry struct {
		path    string
		lastUse time.Time
	}
	byName := map[string][]entry{}
	dirs := map[string]bool{}
	for _, e := range ents {
		m := entryRE.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		info, ierr := e.Info()
		if ierr != nil {
			continue
		}
		dirs[e.Name()] = true
		byName[m[1]] = append(byName[m[1]], entry{filepath.Join(c.Dir, e.Name()), info.ModTime()})
	}
	keep := func(err2 error) {
		if err == nil {
			err = err2
		}
	}
	cutoff := time.Now().Add(-grace)
	for _, list := range byName {
		sort.Slice(list, func(i, j int) bool { return list[i].lastUse.After(list[j].lastUse) })
		for _, e := range list[1:] {
			if e.lastUse.After(cutoff) {
				continue
			}
			ok, rerr := removeEntry(e.path, cutoff)
			if rerr != nil {
				keep(rerr)
			} else if ok {
				removed = append(removed, e.path)
			}
		}
	}
	// Images of kitrun versions that kept one directory per name (NAME),
	// replaced in place; nothing pins them.
	for _, e := range ents {
		p := filepath.Join(c.Dir, e.Name())
		if !e.IsDir() || dirs[e.Name()] || strings.HasPrefix(e.Name(), ".") || image.CheckReplaceable(p) != nil {
			continue
		}
		if info, ierr := e.Info(); ierr == nil && info.ModTime().Before(cutoff) {
			if rerr := os.RemoveAll(p); rerr != nil {
				keep(rerr)
			} else {
				removed = append(removed, p)
			}
		}
	}
	// Lock files without an entry: a build that failed after pinning.
	for _, e := range ents {
		base, isLock := strings.CutSuffix(e.Name(), ".lock")
		if !isLock || !entryRE.MatchString(base) || dirs[base] {
			continue
		}
		p := filepath.Join(c.Dir, e.Name())
		l, ok, lerr := flock.TryLock(p, flock.Exclusive, 0o644)
		if lerr != nil || !ok {
			continue
		}
		if _, serr := os.Stat(filepath.Join(c.Dir, base)); errors.Is(serr, fs.ErrNotExist) {
			os.Remove(p)
		}
		l.Unlock()
	}
	return removed, err
}

// removeEntry removes an entry unless a process pins it or it was used
// after cutoff. It holds the entry's lock exclusively meanwhile, so that no
// process can pin the entry while it goes.
func removeEntry(entry string, cutoff time.Time) (bool, error) {
	l, ok, err := flock.TryLock(lockPath(entry), flock.Exclusive, 0o644)
	if err != nil || !ok {
		return false, err
	}
	defer l.Unlock()
	// A pin between the listing and the lock has moved the last use.
	st, err := os.Stat(entry)
	if err != nil || st.ModTime().After(cutoff) {
		return false, nil
	}
	// Out of sight first, so that no reader finds half an entry; named as
	// a temporary directory, so that a sweep finishes the job if this
	// process dies half-way.
	aside, err := atomicfile.TempDir(entry)
	if err != nil {
		return false, err
	}
	os.Remove(aside)
	if err := os.Rename(entry, aside); err != nil {
		return false, fmt.Errorf("image cache: removing %s: %w", entry, err)
	}
	// The lock file goes while it is held: a process waiting to pin the
	// entry then locks a new file and finds no entry, and builds it again.
	os.Remove(lockPath(entry))
	if err := os.RemoveAll(aside); err != nil {
		return true, fmt.Errorf("image cache: removing %s: %w", entry, err)
	}
	return true, nil
}
