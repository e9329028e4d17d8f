//go:build unix

package imagecache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/image"
)

// fakeImage is the files of a small image directory; marker makes its
// content (and digest) differ.
func fakeImage(name, marker string) (manifest []byte, digest string) {
	manifest = []byte(fmt.Sprintf(`{"kind": %q, "version": 1, "name": %q, "arch": "x86_64", "cmdline": %q, "files": []}`+"\n",
		image.ManifestKind, name, marker))
	return manifest, image.Digest(manifest)
}

func writeImage(t testing.TB, dir string, manifest []byte) {
	t.Helper()
	for n, data := range map[string][]byte{
		image.KernelFile: []byte("kernel"), image.InitrdFile: []byte("initrd"),
		image.CmdlineFile: []byte("x\n"), image.ManifestFile: manifest,
	} {
		if err := atomicfile.Write(filepath.Join(dir, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// put stages and puts an image the way a build does (pinning it).
func put(t testing.TB, c *Cache, name, marker string) *image.Image {
	t.Helper()
	m, digest := fakeImage(name, marker)
	tmp, err := c.Stage(name, digest)
	if err != nil {
		t.Fatal(err)
	}
	writeImage(t, tmp, m)
	img, err := c.Put(tmp, name, digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// unpinned makes an entry as another (gone) process would have left it,
// last used at `used`.
func unpinned(t *testing.T, c *Cache, name, marker string, used time.Time) string {
	t.Helper()
	m, digest := fakeImage(name, marker)
	dir := c.Path(name, digest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeImage(t, dir, m)
	if err := os.Chtimes(dir, used, used); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGetPut(t *testing.T) {
	c := New(t.TempDir())
	_, digest := fakeImage("web", "1")
	if _, err := c.Get("web", digest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a missing entry: %v", err)
	}
	a := put(t, c, "web", "1")
	if a.Dir != c.Path("web", digest) || a.Digest != digest {
		t.Fatalf("image %s %s, want %s %s", a.Dir, a.Digest, c.Path("web", digest), digest)
	}
	// The same spec name with other content: a second entry beside it.
	b := put(t, c, "web", "2")
	if b.Dir == a.Dir {
		t.Fatal("two contents share an entry")
	}
	// A build that loses the race to put the same entry uses the winner's.
	again := put(t, c, "web", "1")
	if again.Dir != a.Dir {
		t.Fatalf("second put of one content went to %s", again.Dir)
	}
	got, err := c.Get("web", digest)
	if err != nil || got.Dir != a.Dir {
		t.Fatalf("Get = %v, %v", got, err)
	}
	assertEntries(t, c.Dir, a.Dir, b.Dir)
}

func TestDamagedEntryIsAnError(t *testing.T) {
	c := New(t.TempDir())
	img := put(t, c, "web", "1")
	os.Remove(filepath.Join(img.Dir, image.InitrdFile))
	if _, err := c.Get("web", img.Digest); err == nil || !strings.Contains(err.Error(), "remove it and build again") {
		t.Fatalf("err = %v", err)
	}
}

// TestSweep: old entries nobody uses go; the newest of each name, recent
// ones, and those a live process pins (this one, or another) stay.
func TestSweep(t *testing.T) {
	c := New(t.TempDir())
	now := time.Now()
	old := now.Add(-72 * time.Hour)
	gone := unpinned(t, c, "a", "1", old)
	recent := unpinned(t, c, "a", "2", now.Add(-time.Hour))
	newest := unpinned(t, c, "a", "3", now.Add(-30*time.Minute))
	onlyOne := unpinned(t, c, "lonely", "1", old) // the newest of its name
	pinnedHere := put(t, c, "b", "1").Dir
	os.Chtimes(pinnedHere, old, old)
	unpinned(t, c, "b", "2", now)
	pinnedThere := unpinned(t, c, "c", "1", old)
	unpinned(t, c, "c", "2", now)
	stop := pinInChild(t, c, "c", "1")
	// Leftovers: a dead build's temporary directory, a lock file whose
	// entry never came, and something that is not an entry at all.
	deadTmp := filepath.Join(c.Dir, ".a-"+strings.Repeat("0", 32)+".tmp-99999999-1")
	os.MkdirAll(deadTmp, 0o700)
	orphanLock := filepath.Join(c.Dir, "d-"+strings.Repeat("1", 32)+".lock")
	os.WriteFile(orphanLock, nil, 0o644)
	notOurs := filepath.Join(c.Dir, "notes")
	os.MkdirAll(notOurs, 0o755)
	os.WriteFile(filepath.Join(notOurs, "todo.txt"), []byte("mine"), 0o644)
	os.Chtimes(notOurs, old, old)
	// An image of a kitrun that kept one directory per name: old ones go.
	legacyOld := filepath.Join(c.Dir, "web")
	os.MkdirAll(legacyOld, 0o755)
	writeImage(t, legacyOld, []byte(`{"kind": "kitrun-image", "version": 1}`))
	os.Chtimes(legacyOld, old, old)
	legacyNew := filepath.Join(c.Dir, "api")
	os.MkdirAll(legacyNew, 0o755)
	writeImage(t, legacyNew, []byte(`{"kind": "kitrun-image", "version": 1}`))

	removed, err := c.Sweep(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	want := []string{gone, deadTmp, legacyOld}
	sort.Strings(want)
	if strings.Join(removed, " ") != strings.Join(want, " ") {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, p := range []string{recent, newest, onlyOne, pinnedHere, pinnedThere, notOurs, legacyNew} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{gone, gone + ".lock", deadTmp, orphanLock} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there (%v)", p, err)
		}
	}

	// Once the other process is gone (killed: no chance to clean up), its
	// entry is no longer in use.
	stop()
	removed, err = c.Sweep(24 * time.Hour)
	if err != nil || len(removed) != 1 || removed[0] != pinnedThere {
		t.Fatalf("second sweep removed %v (%v), want %s", removed, err, pinnedThere)
	}
}

// A process that pins an entry while a sweep removes it gets it rebuilt,
// never half of it: its Get says "missing" or gives a whole image.
func TestPinRacesSweep(t *testing.T) {
	c := New(t.TempDir())
	unpinned(t, c, "r", "newest", time.Now().Add(time.Hour))
	for i := range 50 {
		marker := fmt.Sprint(i)
		dir := unpinned(t, c, "r", marker, time.Now().Add(-72*time.Hour))
		done := make(chan error)
		go func() {
			_, err := c.Sweep(time.Hour)
			done <- err
		}()
		_, digest := fakeImage("r", marker)
		img, err := c.Get("r", digest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			t.Fatalf("round %d: %v", i, err)
		case img.Dir != dir:
			t.Fatalf("round %d: %s", i, img.Dir)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func assertEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		if e.IsDir() {
			got = append(got, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %v, want %v", got, want)
	}
}

// pinInChild pins an entry from another process; stop kills it.
func pinInChild(t *testing.T, c *Cache, name, marker string) (stop func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPin$")
	cmd.Env = append(os.Environ(), "IMAGECACHE_TEST_PIN="+c.Dir+"|"+name+"|"+marker)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	t.Cleanup(stop)
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "pinned" {
		stop()
		t.Fatalf("child: %q %v", buf, err)
	}
	return stop
}

// TestHelperPin is the child of pinInChild.
func TestHelperPin(t *testing.T) {
	arg := os.Getenv("IMAGECACHE_TEST_PIN")
	if arg == "" {
		t.Skip("helper process only")
	}
	parts := strings.Split(arg, "|")
	_, digest := fakeImage(parts[1], parts[2])
	// The parent set the entry's last use; a real user sets it to now,
	// which the parent's sweep must not be the reason to keep it.
	dir := New(parts[0]).Path(parts[1], digest)
	st, _ := os.Stat(dir)
	if err := Pin(dir); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(dir, st.ModTime(), st.ModTime())
	os.Stdout.WriteString("pinned")
	time.Sleep(time.Minute)
}

func TestPinOutsideTheCacheIsANoOp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "web")
	os.MkdirAll(dir, 0o755)
	if err := Pin(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Pin made a lock beside a directory that is not an entry: %v", err)
	}
}
