package kernel

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// newIndex builds an index from modules; aliases are "alias=module" pairs.
func newIndex(mods []Module, aliases ...string) *Index {
	ix := &Index{Dir: "/lib/modules/test", mods: map[string]*Module{}, aliases: map[string][]string{}}
	for _, m := range mods {
		m := m
		if m.Path == "" && !m.Builtin {
			m.Path = "kernel/" + m.Name + ".ko"
		}
		ix.mods[m.Name] = &m
	}
	for _, a := range aliases {
		al, name, _ := strings.Cut(a, "=")
		ix.aliases[al] = append(ix.aliases[al], name)
	}
	ix.finish()
	return ix
}

func dep(name string, deps ...string) Module { return Module{Name: name, Depends: deps} }

func resolveNames(t *testing.T, ix *Index, names ...string) string {
	t.Helper()
	ms, err := ix.Resolve(names...)
	if err != nil {
		t.Fatalf("Resolve(%v): %v", names, err)
	}
	return strings.Join(ms2names(ms), " ")
}

func ms2names(ms []Module) []string { return names(ms) }

func TestResolveOrder(t *testing.T) {
	ix := newIndex([]Module{
		dep("top", "zeta", "alpha"),
		dep("alpha", "base"),
		dep("zeta", "base"),
		dep("base"),
		dep("lonely"),
		dep("uses_builtin", "builtin_dep", "base"),
		{Name: "builtin_dep", Builtin: true},
		// virtio_net's real shape
		dep("virtio_net", "virtio_ring", "virtio", "net_failover"),
		dep("virtio", "virtio_ring"),
		dep("virtio_ring"),
		dep("net_failover", "failover"),
		dep("failover"),
	})
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"top"}, "base alpha zeta top"},
		{[]string{"base"}, "base"},
		// Independent modules come out in name order, whatever the request order.
		{[]string{"lonely", "top"}, "base alpha lonely zeta top"},
		{[]string{"top", "lonely"}, "base alpha lonely zeta top"},
		// Each module once.
		{[]string{"top", "alpha", "base", "top"}, "base alpha zeta top"},
		{[]string{"uses_builtin"}, "base uses_builtin"},
		{[]string{"builtin_dep"}, ""},
		{[]string{}, ""},
		{[]string{"virtio-net"}, "failover net_failover virtio_ring virtio virtio_net"},
	} {
		if got := resolveNames(t, ix, tc.names...); got != tc.want {
			t.Errorf("Resolve(%v) = %q, want %q", tc.names, got, tc.want)
		}
	}
	ms, _ := ix.Resolve("top")
	if ms[0].Path != "kernel/base.ko" {
		t.Errorf("Resolve returns modules without their paths: %+v", ms[0])
	}
}

func TestResolveSoftdeps(t *testing.T) {
	ix := newIndex([]Module{
		{Name: "ext9", Depends: []string{"jbd9"}, SoftdepPre: []string{"crc32c", "crypto_md5", "nowhere"}},
		dep("jbd9"),
		dep("crc32c_generic"),
		dep("crc32c_intel"),
		{Name: "md5", Builtin: true},
		// Softdep on a module that depends on us: dropped, not a cycle.
		{Name: "loop_a", SoftdepPre: []string{"loop_b"}},
		dep("loop_b", "loop_a"),
		// post: loaded after
		{Name: "mpls", SoftdepPost: []string{"mpls_gso"}},
		dep("mpls_gso"),
		// softdep naming a module directly
		{Name: "nft", SoftdepPre: []string{"zz_log"}},
		dep("zz_log"),
	}, "crc32c=crc32c_generic", "crc32c=crc32c_intel", "crypto_md5=md5")
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"ext9"}, "crc32c_generic crc32c_intel jbd9 ext9"},
		{[]string{"loop_a"}, "loop_a loop_b"},
		{[]string{"loop_b"}, "loop_a loop_b"},
		{[]string{"mpls"}, "mpls mpls_gso"},
		{[]string{"nft"}, "zz_log nft"},
	} {
		if got := resolveNames(t, ix, tc.names...); got != tc.want {
			t.Errorf("Resolve(%v) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

func TestResolveCycles(t *testing.T) {
	ix := newIndex([]Module{
		dep("a", "b"),
		dep("b", "c"),
		dep("c", "a"),
		dep("top", "a"),
		dep("self", "self"),
		dep("broken", "gone"),
	})
	for _, tc := range []struct{ name, want string }{
		{"top", "cycle: a -> b -> c -> a"},
		{"c", "cycle: a -> b -> c -> a"},
		{"self", "cycle: self -> self"},
		{"broken", "broken depends on gone, which is not in /lib/modules/test"},
	} {
		_, err := ix.Resolve(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%s) = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestResolveUnknown(t *testing.T) {
	ix := newIndex([]Module{dep("virtio_net"), dep("virtio_mem"), dep("virtio_input"), dep("virtio_blk"), dep("e1000"), dep("e1000e")})
	_, err := ix.Resolve("virtio_nett", "virtio_blk", "nonsense_module_name")
	if err == nil {
		t.Fatal("no error")
	}
	var errs []*UnknownModuleError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var u *UnknownModuleError
		if !errors.As(e, &u) {
			t.Fatalf("%v is not an *UnknownModuleError", e)
		}
		errs = append(errs, u)
	}
	want := []*UnknownModuleError{
		{Name: "virtio_nett", Suggestions: []string{"virtio_net"}},
		{Name: "nonsense_module_name"},
	}
	if !reflect.DeepEqual(errs, want) {
		t.Errorf("errors %+v, want %+v", errs, want)
	}
	if got := errs[0].Error(); got != `unknown kernel module "virtio_nett"; did you mean virtio_net?` {
		t.Errorf("message %s", got)
	}
	if got := errs[1].Error(); got != `unknown kernel module "nonsense_module_name"` {
		t.Errorf("message %s", got)
	}
	var u *UnknownModuleError
	if !errors.As(err, &u) || u.Name != "virtio_nett" {
		t.Errorf("errors.As on the joined error: %v", u)
	}

	_, err = ix.Lookup("e100")
	if err == nil || err.Error() != `unknown kernel module "e100"; did you mean e1000?` {
		t.Errorf("Lookup(e100): %v", err)
	}
	_, err = ix.Lookup("virtio_bl")
	if err == nil || !strings.Contains(err.Error(), "did you mean virtio_blk?") {
		t.Errorf("Lookup(virtio_bl): %v", err)
	}
	ix = newIndex([]Module{dep("ext4"), dep("ext2")}, "fs_ext4=ext4")
	_, err = ix.Lookup("fs-ext4")
	if err == nil || err.Error() != `unknown kernel module "fs-ext4"; did you mean ext4?` {
		t.Errorf("Lookup of an alias: %v", err)
	}
	e := &UnknownModuleError{Name: "x", Suggestions: []string{"a", "b", "c"}}
	if e.Error() != `unknown kernel module "x"; did you mean a, b or c?` {
		t.Errorf("three suggestions: %s", e)
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"virtio_nett", "virtio_net", 1},
		{"virtio_net", "virtio_blk", 3},
		{"flaw", "lawn", 2},
		{"same", "same", 0},
	} {
		if d := levenshtein(tc.a, tc.b); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
		if d := levenshtein(tc.b, tc.a); d != tc.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.b, tc.a, d, tc.d)
		}
	}
}
