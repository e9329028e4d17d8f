package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testVer = "1.2.3-4-test"

func testDebEntries() []entry {
	mods := "./lib/modules/" + testVer + "/"
	return []entry{
		{name: "./", dir: true},
		{name: "./boot/", dir: true},
		{name: "./boot/System.map-" + testVer, body: "ffffffff81000000 T _text\n"},
		{name: "./boot/config-" + testVer, body: "CONFIG_VIRTIO=m\n"},
		{name: "./boot/vmlinuz-" + testVer, body: "MZ kernel image"},
		{name: "./lib/", dir: true},
		{name: "./lib/modules/", dir: true},
		{name: mods, dir: true},
		{name: mods + "kernel/drivers/virtio/virtio.ko", body: string(elfModule("name=virtio", "depends=virtio_ring"))},
		{name: mods + "kernel/drivers/virtio/virtio_ring.ko", body: string(elfModule("name=virtio_ring", "depends="))},
		{name: mods + "kernel/drivers/char/virtio_console.ko", body: string(elfModule("name=virtio_console", "depends=virtio,virtio_ring"))},
		{name: mods + "modules.builtin", body: "kernel/fs/ext4/ext4.ko\n"},
		{name: mods + "modules.order", body: "kernel/drivers/virtio/virtio.ko\n"},
		{name: mods + "build", link: "/usr/src/linux-headers-" + testVer},
		{name: "./usr/share/doc/linux-image-" + testVer + "/changelog.gz", body: "docs"},
	}
}

func TestFromDeb(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	deb := writeDeb(t, dir, "linux-image-"+testVer+"_1.0_amd64.deb", testDebEntries())
	ctx := context.Background()

	k, err := FromDeb(ctx, deb, cache)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(deb)
	sum := sha256.Sum256(b)
	root := filepath.Join(cache, hex.EncodeToString(sum[:])[:16])
	want := &Kernel{
		Version:    testVer,
		Image:      filepath.Join(root, "boot", "vmlinuz-"+testVer),
		Config:     filepath.Join(root, "boot", "config-"+testVer),
		ModulesDir: filepath.Join(root, "lib", "modules", testVer),
		indexCache: filepath.Join(root, indexCacheName),
	}
	if !reflect.DeepEqual(k, want) {
		t.Fatalf("FromDeb =\n%+v\nwant\n%+v", k, want)
	}
	if got, _ := os.ReadFile(k.Image); string(got) != "MZ kernel image" {
		t.Errorf("image contents %q", got)
	}
	for _, skipped := range []string{"usr", "boot/System.map-" + testVer, "lib/modules/" + testVer + "/build"} {
		if _, err := os.Lstat(filepath.Join(root, skipped)); err == nil {
			t.Errorf("%s was extracted", skipped)
		}
	}
	if st, err := os.Stat(root); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("extraction dir: %v, %v", st.Mode(), err)
	}

	start := time.Now()
	k2, err := FromDeb(ctx, deb, cache)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k2, k) {
		t.Errorf("second FromDeb = %+v, want %+v", k2, k)
	}
	t.Logf("warm FromDeb: %v", time.Since(start))

	ix, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ix.Resolve("virtio-console", "ext4")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(ms), " "); got != "virtio_ring virtio virtio_console" {
		t.Errorf("Resolve = %s", got)
	}
	if _, err := os.Stat(k.indexCache); err != nil {
		t.Errorf("index cache not written: %v", err)
	}

	// A changed package at the same path is a different kernel.
	time.Sleep(10 * time.Millisecond)
	ents := testDebEntries()
	ents[4].body = "MZ another kernel"
	writeDeb(t, dir, filepath.Base(deb), ents)
	k3, err := FromDeb(ctx, deb, cache)
	if err != nil {
		t.Fatal(err)
	}
	if k3.Image == k.Image {
		t.Errorf("rewritten package reused the old extraction %s", k.Image)
	}
}

func TestFromDebConcurrent(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	deb := writeDeb(t, dir, "k.deb", testDebEntries())
	var wg sync.WaitGroup
	ks := make([]*Kernel, 8)
	errs := make([]error, len(ks))
	for i := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks[i], errs[i] = FromDeb(context.Background(), deb, cache)
		}()
	}
	wg.Wait()
	for i := range ks {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !reflect.DeepEqual(ks[i], ks[0]) {
			t.Errorf("caller %d got %+v, caller 0 %+v", i, ks[i], ks[0])
		}
	}
	ents, _ := os.ReadDir(cache)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != 3 { // <key>, <key>.lock, .debsums
		t.Errorf("cache holds %q; want the extraction, its lock and .debsums only", got)
	}
}

func TestFromDebInterrupted(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	deb := writeDeb(t, dir, "k.deb", testDebEntries())
	b, _ := os.ReadFile(deb)
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:])[:16]

	// A cancelled extraction leaves nothing that looks finished.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FromDeb(ctx, deb, cache); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled FromDeb: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, key)); err == nil {
		t.Fatal("cancelled extraction left a finished-looking directory")
	}
	if m, _ := filepath.Glob(filepath.Join(cache, ".tmp-*")); len(m) != 0 {
		t.Errorf("temporary directories left behind: %v", m)
	}

	// A killed process leaves its temporary directory; the next run removes
	// it and extracts afresh.
	stale := filepath.Join(cache, ".tmp-"+key+"-12345")
	writeFiles(t, stale, map[string][]byte{"boot/vmlinuz-" + testVer: []byte("half")})
	k, err := FromDeb(context.Background(), deb, cache)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(k.Image); string(got) != "MZ kernel image" {
		t.Errorf("image %q", got)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temporary directory not removed")
	}

	// A directory without a manifest is not trusted.
	os.Remove(filepath.Join(cache, key, manifestName))
	if _, err := FromDeb(context.Background(), deb, cache); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("extraction without manifest: %v", err)
	}
}

func TestFromDebRejects(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	base := testDebEntries()
	for _, tc := range []struct {
		name string
		ents []entry
		want string
	}{
		{"dotdot", append(base[:len(base):len(base)], entry{name: "./lib/modules/../../../evil", body: "x"}), `escapes with ".."`},
		{"absolute", append(base[:len(base):len(base)], entry{name: "/lib/modules/x", body: "x"}), "absolute"},
		{"no image", base[5:], "no boot/vmlinuz-" + testVer},
		{"no modules", base[:5], "exactly one lib/modules/<version>"},
		{"two versions", append(base[:len(base):len(base)], entry{name: "./lib/modules/9.9/", dir: true}), "found 2"},
	} {
		deb := writeDeb(t, dir, tc.name+".deb", tc.ents)
		_, err := FromDeb(context.Background(), deb, cache)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
		t.Error("path traversal wrote outside the cache")
	}
	// Damaged packages: the negative ar member size panicked the ar
	// library kitrun used before; a cut package must fail cleanly too.
	good, err := os.ReadFile(writeDeb(t, dir, "good.deb", base))
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(good, []byte("data.tar.xz"))
	negative := slices.Concat(good[:at+48], []byte("-5        "), good[at+58:])
	for name, b := range map[string][]byte{"negative-size.deb": negative, "cut.deb": good[:len(good)-100]} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		if _, err := FromDeb(context.Background(), p, cache); err == nil || !strings.HasPrefix(err.Error(), p+": ") {
			t.Errorf("%s: %v, want an error naming the package", name, err)
		}
	}
	notDeb := filepath.Join(dir, "x.deb")
	os.WriteFile(notDeb, []byte("hello"), 0o644)
	if _, err := FromDeb(context.Background(), notDeb, cache); err == nil || !strings.Contains(err.Error(), "not a Debian package") {
		t.Errorf("not a deb: %v", err)
	}
	if _, err := FromDeb(context.Background(), filepath.Join(dir, "missing.deb"), cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing deb: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, ".tmp-*")); len(m) != 0 {
		t.Errorf("temporary directories left behind: %v", m)
	}
}

func TestFromFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		"boot/vmlinuz-" + testVer:                        []byte("MZ"),
		"boot/config-" + testVer:                         []byte("CONFIG_X=y\n"),
		"lib/modules/" + testVer + "/kernel/x/virtio.ko": elfModule("name=virtio"),
		"lib/modules/" + testVer + "/modules.builtin":    []byte("kernel/fs/ext4/ext4.ko\n"),
		"lib/modules/bad name/modules.builtin":           nil,
	})
	img := filepath.Join(dir, "boot", "vmlinuz-"+testVer)
	mods := filepath.Join(dir, "lib", "modules", testVer)
	k, err := FromFiles(img, mods)
	if err != nil {
		t.Fatal(err)
	}
	want := &Kernel{Version: testVer, Image: img, Config: filepath.Join(dir, "boot", "config-"+testVer), ModulesDir: mods}
	if !reflect.DeepEqual(k, want) {
		t.Errorf("FromFiles = %+v, want %+v", k, want)
	}
	if k, err := FromFiles(img, ""); err != nil || k.ModulesDir != "" || k.Version != "" {
		t.Errorf("without modules: %+v, %v", k, err)
	} else if _, err := k.Modules(); err == nil {
		t.Error("Modules of a kernel without modules succeeded")
	}
	for _, tc := range []struct{ img, mods, want string }{
		{filepath.Join(dir, "nope"), mods, "no such file"},
		{dir, mods, "not a regular file"},
		{img, filepath.Join(dir, "nope"), "no such file"},
		{img, img, "not a directory"},
		{img, filepath.Join(dir, "lib", "modules", "bad name"), "named after the kernel release"},
	} {
		if _, err := FromFiles(tc.img, tc.mods); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromFiles(%s, %s) = %v, want error containing %q", tc.img, tc.mods, err, tc.want)
		}
	}
}
