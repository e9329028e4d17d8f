package cmdutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// twinSpec writes a spec named "twin" whose content differs by marker.
func twinSpec(t *testing.T, marker string) string {
	t.Helper()
	return qemutest.WriteSpec(t, "twin-"+marker, "version: 1\nname: twin\nkernel: {package: linux-image-cloud}\nfiles:\n  - path: /etc/marker\n    contents: "+marker+"\n")
}

// check says what is wrong with the image in dir, compared with what was
// loaded from it (nil: it is still whole and unchanged).
func check(img *image.Image, manifest []byte) error {
	got, err := os.ReadFile(filepath.Join(img.Dir, image.ManifestFile))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, manifest) {
		return fmt.Errorf("manifest changed")
	}
	for _, f := range []struct {
		name string
		blob image.Blob
	}{{image.KernelFile, img.Manifest.Kernel}, {image.InitrdFile, img.Manifest.Initrd.Blob}} {
		st, err := os.Stat(filepath.Join(img.Dir, f.name))
		if err != nil {
			return err
		}
		if st.Size() != f.blob.Size {
			return fmt.Errorf("%s is %d bytes, the manifest says %d", f.name, st.Size(), f.blob.Size)
		}
	}
	return nil
}

func marker(t *testing.T, img *image.Image) string {
	t.Helper()
	for _, e := range img.Manifest.Files {
		if e.Path == "/etc/marker" {
			return e.SHA256
		}
	}
	t.Fatalf("%s: no /etc/marker", img.Dir)
	return ""
}

func sumOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestSameNameSpecsSideBySide: two specs with the same name: each keeps
// its own image, and loading one never changes the other's.
func TestSameNameSpecsSideBySide(t *testing.T) {
	qemutest.Require(t, "x86_64")
	ctx := context.Background()
	o := BuildOptions{Arch: "x86_64"}
	a, err := LoadImage(ctx, twinSpec(t, "a"), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	am, _ := os.ReadFile(filepath.Join(a.Dir, image.ManifestFile))
	b, err := LoadImage(ctx, twinSpec(t, "b"), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir == b.Dir {
		t.Fatalf("both specs named twin share %s", a.Dir)
	}
	if err := check(a, am); err != nil {
		t.Fatalf("loading the second spec changed the first's image %s: %v", a.Dir, err)
	}
	if marker(t, a) != sumOf("a") || marker(t, b) != sumOf("b") {
		t.Fatal("an image holds the other spec's content")
	}
}

// TestWatcherNeverSeesPartialImage: while a spec is rebuilt 50 times
// (unchanged, or alternating with another spec of the same name), a
// watcher polling the image first loaded never finds it incomplete or
// changed.
func TestWatcherNeverSeesPartialImage(t *testing.T) {
	qemutest.Require(t, "x86_64")
	specs := []string{twinSpec(t, "a"), twinSpec(t, "b")}
	for _, tc := range []struct {
		name  string
		specs []string
	}{{"unchanged", specs[:1]}, {"alternating", specs}} {
		t.Run(tc.name, func(t *testing.T) { watchRebuilds(t, tc.specs) })
	}
}

func watchRebuilds(t *testing.T, specs []string) {
	ctx := context.Background()
	o := BuildOptions{Arch: "x86_64"}
	img, err := LoadImage(ctx, specs[0], o, nil)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := os.ReadFile(filepath.Join(img.Dir, image.ManifestFile))
	var (
		stop   atomic.Bool
		polls  int
		faults = map[string]int{}
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			polls++
			if err := check(img, manifest); err != nil {
				what := err.Error()
				var pe *fs.PathError
				if errors.As(err, &pe) {
					what = filepath.Base(pe.Path) + " missing"
				}
				faults[what]++
			}
		}
	}()
	for i := range 50 {
		got, err := LoadImage(ctx, specs[i%len(specs)], o, nil)
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
		if want := sumOf([]string{"a", "b"}[i%len(specs)]); marker(t, got) != want {
			t.Errorf("rebuild %d: the image holds the other spec's content", i)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(faults) > 0 {
		t.Fatalf("the watcher found %s changed or partial (%d polls): %v", img.Dir, polls, faults)
	}
	t.Logf("%d polls, no fault", polls)
}
