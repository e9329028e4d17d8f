package kernel

// Tests against Debian's real kernel packages, found in kitrun's kernel cache
// ($XDG_CACHE_HOME/kitrun/kernels, usually ~/.cache/kitrun/kernels). They are
// skipped when the packages are missing, except on CI (CI=true), where that is
// a failure.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var realCache struct {
	once sync.Once
	dir  string
	err  error

	mu      sync.Mutex
	kernels map[string]*Kernel
}

func TestMain(m *testing.M) {
	code := m.Run()
	if realCache.dir != "" {
		os.RemoveAll(realCache.dir)
	}
	os.Exit(code)
}

func kernelCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "kitrun", "kernels")
}

// realDeb finds the Debian cloud kernel package for arch ("amd64", "arm64").
func realDeb(t *testing.T, arch string) string {
	t.Helper()
	deb, err := FindDeb(kernelCacheDir(), "linux-image-cloud", "cloud-"+arch)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must provide the kernel packages: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	return deb
}

// realKernel extracts the package for arch once per test binary, into a
// temporary cache.
func realKernel(t *testing.T, arch string) *Kernel {
	t.Helper()
	deb := realDeb(t, arch)
	realCache.once.Do(func() {
		realCache.dir, realCache.err = os.MkdirTemp("", "kitrun-kernel-test-")
		realCache.kernels = map[string]*Kernel{}
	})
	if realCache.err != nil {
		t.Fatal(realCache.err)
	}
	realCache.mu.Lock()
	defer realCache.mu.Unlock()
	if k := realCache.kernels[arch]; k != nil {
		return k
	}
	start := time.Now()
	k, err := FromDeb(context.Background(), deb, realCache.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold FromDeb(%s): %v", filepath.Base(deb), time.Since(start).Round(time.Millisecond))
	realCache.kernels[arch] = k
	return k
}

var arches = []string{"amd64", "arm64"}

func TestRealFromDeb(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			k := realKernel(t, arch)
			if !strings.HasPrefix(k.Version, "6.") || !strings.HasSuffix(k.Version, "-cloud-"+arch) {
				t.Errorf("version %q", k.Version)
			}
			if st, err := os.Stat(k.Image); err != nil || st.Size() < 4<<20 {
				t.Errorf("image %s: %v", k.Image, err)
			}
			if b, err := os.ReadFile(k.Config); err != nil || !strings.Contains(string(b), "CONFIG_VIRTIO") {
				t.Errorf("config %s: %v", k.Config, err)
			}
			kos, _ := filepath.Glob(filepath.Join(k.ModulesDir, "kernel", "drivers", "virtio", "*.ko"))
			if len(kos) < 5 {
				t.Errorf("virtio modules: %v", kos)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(k.ModulesDir), "..", "..", "usr")); err == nil {
				t.Error("usr/ (documentation) was extracted")
			}

			start := time.Now()
			k2, err := FromDeb(context.Background(), realDeb(t, arch), realCache.dir)
			warm := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("warm FromDeb: %v", warm)
			if *k2 != *k {
				t.Errorf("second call %+v, first %+v", k2, k)
			}
			if warm > time.Second {
				t.Errorf("warm FromDeb took %v", warm)
			}
		})
	}
}

// checkOrder checks that every module comes after its (loadable)
// dependencies and appears once.
func checkOrder(t *testing.T, ix *Index, ms []Module) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range ms {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("%s listed twice", m.Name)
		}
		pos[m.Name] = i
		if m.Builtin {
			t.Errorf("built-in %s listed", m.Name)
		}
		if _, err := os.Stat(filepath.Join(ix.Dir, m.Path)); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
	}
	for i, m := range ms {
		for _, d := range m.Depends {
			dm, err := ix.Lookup(d)
			if err != nil {
				t.Errorf("%s: dependency %s: %v", m.Name, d, err)
				continue
			}
			if dm.Builtin {
				continue
			}
			if p, ok := pos[d]; !ok || p > i {
				t.Errorf("%s (position %d) needs %s, which is at %d (ok=%v)", m.Name, i, d, p, ok)
			}
		}
	}
}

func TestRealResolve(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			k := realKernel(t, arch)
			start := time.Now()
			ix, err := k.Modules(NoIndexCache())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("index build: %v, %d modules", time.Since(start).Round(time.Millisecond), len(ix.All()))
			if _, err := k.Modules(); err != nil { // writes the cache
				t.Fatal(err)
			}
			start = time.Now()
			if _, err := k.Modules(); err != nil {
				t.Fatal(err)
			}
			t.Logf("index from cache: %v", time.Since(start).Round(time.Microsecond))

			for _, name := range []string{"virtio_net", "virtio_console", "virtio_blk", "virtio-pci", "virtio_mmio"} {
				ms, err := ix.Resolve(name)
				if err != nil {
					t.Fatal(err)
				}
				checkOrder(t, ix, ms)
				t.Logf("Resolve(%s) = %s", name, strings.Join(names(ms), " "))
				if len(ms) == 0 || ms[len(ms)-1].Name != normName(name) {
					t.Errorf("Resolve(%s) does not end with it: %v", name, names(ms))
				}
			}

			ms, _ := ix.Resolve("virtio_net")
			pos := map[string]int{}
			for i, m := range ms {
				pos[m.Name] = i + 1
			}
			for _, want := range [][2]string{{"failover", "net_failover"}, {"net_failover", "virtio_net"}, {"virtio_ring", "virtio_net"}, {"virtio", "virtio_net"}} {
				if pos[want[0]] == 0 || pos[want[0]] > pos[want[1]] {
					t.Errorf("%s should come before %s: %v", want[0], want[1], names(ms))
				}
			}

			// ext4 is built into Debian's cloud kernels.
			if m, err := ix.Lookup("ext4"); err != nil || !m.Builtin {
				t.Errorf("ext4: %+v, %v", m, err)
			}
			b, _ := os.ReadFile(filepath.Join(k.ModulesDir, "modules.builtin"))
			if !strings.Contains(string(b), "kernel/fs/ext4/ext4.ko") {
				t.Error("modules.builtin does not list ext4; pick another built-in for this test")
			}
			if ms, err := ix.Resolve("ext4"); err != nil || len(ms) != 0 {
				t.Errorf("Resolve(ext4) = %v, %v; want nothing", names(ms), err)
			}

			_, err = ix.Resolve("virtio_nett")
			var u *UnknownModuleError
			if !errors.As(err, &u) || len(u.Suggestions) == 0 || u.Suggestions[0] != "virtio_net" {
				t.Errorf("Resolve(virtio_nett): %v", err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestRealResolveEach resolves every loadable module of the real kernels: no
// cycles, no missing dependencies, every file present.
func TestRealResolveEach(t *testing.T) {
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			k := realKernel(t, arch)
			ix, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			n, longest := 0, []Module(nil)
			for _, m := range ix.All() {
				if m.Builtin {
					continue
				}
				ms, err := ix.Resolve(m.Name)
				if err != nil {
					t.Errorf("Resolve(%s): %v", m.Name, err)
					continue
				}
				checkOrder(t, ix, ms)
				n++
				if len(ms) > len(longest) {
					longest = ms
				}
			}
			if n < 900 {
				t.Errorf("only %d loadable modules", n)
			}
			t.Logf("%d loadable modules resolve; longest chain: %s", n, strings.Join(names(longest), " "))
		})
	}
}
