package kernel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// syntheticTree writes a modules directory exercising what the index reads.
func syntheticTree(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "lib", "modules", testVer)
	writeFiles(t, dir, map[string][]byte{
		// depends, with a '-' in the file name and '_' in name=
		"kernel/a.ko":     elfModule("license=GPL", "name=a", "depends=b-mod", "alias=pci:v00001AF4d*sv*sd*bc*sc*i*", "vermagic=x"),
		"kernel/b-mod.ko": elfModule("name=b_mod", "depends="),
		// updates/ overrides kernel/
		"updates/b-mod.ko": elfModule("name=b_mod", "depends="),
		// softdeps by alias, by name, and to a built-in; compressed files
		"kernel/c.ko.xz": xzBytes(t, elfModule("name=c", "softdep=pre: crypto-foo missing_mod post: e", "softdep=ignored")),
		"kernel/d.ko.gz": gzBytes(elfModule("name=d", "alias=crypto-foo", "alias=foo")),
		// no name= (old kernels): the name comes from the file
		"kernel/e-x.ko": elfModule("license=GPL"),
		"kernel/f.ko":   elfModule("name=f", "softdep=pre: crc9"),
		// symlinks out of the tree are not followed
		"modules.builtin":         []byte("kernel/fs/ext9/ext9.ko\nkernel/lib/crc9-generic.ko\n"),
		"modules.builtin.modinfo": []byte("ext9.license=GPL\x00crc9_generic.alias=crypto-crc9\x00crc9_generic.alias=crc9\x00printk.parm=x:y\x00"),
		"modules.order":           []byte("kernel/a.ko\n"),
		"kernel/README":           []byte("not a module"),
	})
	os.Symlink("/nonexistent/linux-headers", filepath.Join(dir, "build"))
	return dir
}

func TestIndexSynthetic(t *testing.T) {
	dir := syntheticTree(t)
	k, err := FromFiles(filepath.Join(dir, "modules.order"), dir)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	if ix.Version != testVer || ix.Dir != dir {
		t.Errorf("index of %s %s", ix.Version, ix.Dir)
	}
	want := []Module{
		{Name: "a", Path: "kernel/a.ko", Depends: []string{"b_mod"}},
		{Name: "b_mod", Path: "updates/b-mod.ko"},
		{Name: "c", Path: "kernel/c.ko.xz", SoftdepPre: []string{"crypto_foo", "missing_mod"}, SoftdepPost: []string{"e"}},
		{Name: "crc9_generic", Builtin: true},
		{Name: "d", Path: "kernel/d.ko.gz"},
		{Name: "e_x", Path: "kernel/e-x.ko"},
		{Name: "ext9", Builtin: true},
		{Name: "f", Path: "kernel/f.ko", SoftdepPre: []string{"crc9"}},
		{Name: "printk", Builtin: true},
	}
	got := ix.All()
	for i := range got {
		if got[i].Size <= 0 && !got[i].Builtin {
			t.Errorf("%s: size %d", got[i].Name, got[i].Size)
		}
		got[i].Size = 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("All =\n%+v\nwant\n%+v", got, want)
	}
	if got := ix.aliases["crypto_foo"]; !reflect.DeepEqual(got, []string{"d"}) {
		t.Errorf("alias crypto_foo -> %v", got)
	}
	if _, ok := ix.aliases["pci:v00001AF4d*sv*sd*bc*sc*i*"]; ok {
		t.Error("wildcard alias indexed")
	}

	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"a"}, "b_mod a"},
		{[]string{"c"}, "d c"}, // e is missing: post softdep "e" names no module (the module is e_x)
		{[]string{"e-x", "c"}, "d c e_x"},
		{[]string{"ext9"}, ""},
		{[]string{"f"}, "f"}, // crc9 is built in
		{[]string{"crc9-generic", "printk"}, ""},
	} {
		ms, err := ix.Resolve(tc.names...)
		if err != nil {
			t.Errorf("Resolve(%v): %v", tc.names, err)
			continue
		}
		if got := strings.Join(names(ms), " "); got != tc.want {
			t.Errorf("Resolve(%v) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

func TestIndexCache(t *testing.T) {
	dir := syntheticTree(t)
	cache := t.TempDir()
	k, err := FromFiles(filepath.Join(dir, "modules.order"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Modules(IndexCacheDir(cache)); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "modindex-"+testVer+"-*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	// Plant a marker in the cache to see whether it is used.
	b, _ := os.ReadFile(files[0])
	var f indexFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Modules {
		if m.Name == "a" {
			m.Path = "from-cache"
		}
	}
	b, _ = json.Marshal(f)
	os.WriteFile(files[0], b, 0o644)

	path := func(opts ...IndexOption) string {
		t.Helper()
		ix, err := k.Modules(opts...)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ix.Lookup("a")
		if err != nil {
			t.Fatal(err)
		}
		return m.Path
	}
	if p := path(IndexCacheDir(cache)); p != "from-cache" {
		t.Errorf("second call did not use the cache: %s", p)
	}
	if p := path(); p != "kernel/a.ko" {
		t.Errorf("FromFiles kernel used a cache without IndexCacheDir: %s", p)
	}
	if p := path(IndexCacheDir(cache), NoIndexCache()); p != "kernel/a.ko" {
		t.Errorf("NoIndexCache used the cache: %s", p)
	}
	// Any change to the module files invalidates the cache.
	later := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(dir, "kernel", "f.ko"), later, later)
	if p := path(IndexCacheDir(cache)); p != "kernel/a.ko" {
		t.Errorf("cache used after a module changed: %s", p)
	}
	if p := path(IndexCacheDir(cache)); p != "kernel/a.ko" {
		t.Errorf("rebuilt cache: %s", p)
	}
}

func TestIndexBadModule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), testVer)
	writeFiles(t, dir, map[string][]byte{
		"kernel/good.ko":  elfModule("name=good"),
		"kernel/trunc.ko": elfModule("name=trunc")[:40],
	})
	k := &Kernel{ModulesDir: dir}
	if _, err := k.Modules(); err == nil || !strings.Contains(err.Error(), "trunc.ko") {
		t.Errorf("truncated module: %v", err)
	}
}

func TestParseSoftdep(t *testing.T) {
	for _, tc := range []struct {
		in        string
		pre, post []string
	}{
		{"pre: crc32c", []string{"crc32c"}, nil},
		{"pre: a b-c post: d", []string{"a", "b_c"}, []string{"d"}},
		{"post: mpls_gso", nil, []string{"mpls_gso"}},
		{"ccm", nil, nil},
		{"x pre: y", []string{"y"}, nil},
	} {
		pre, post := parseSoftdep(tc.in)
		if !reflect.DeepEqual(pre, tc.pre) || !reflect.DeepEqual(post, tc.post) {
			t.Errorf("parseSoftdep(%q) = %v, %v; want %v, %v", tc.in, pre, post, tc.pre, tc.post)
		}
	}
}
