package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/guestbin"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// buildKitrunWith compiles kitrun with extra go build flags into dir.
func buildKitrunWith(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(dir, "kitrun")
	args := append(append([]string{"build"}, flags...), "-o", bin, ".")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", flags, err, out)
	}
	return bin
}

// installedEnv is the environment of a user's machine with kitrun
// installed: no KITRUN_SRC, no Go toolchain on PATH, kitrun's cache (for
// the kernels) where the tests keep it.
func installedEnv(t *testing.T) []string {
	t.Helper()
	var path []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			continue
		}
		path = append(path, dir)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "KITRUN_SRC", "PATH", "KITRUN_CACHE", "GOROOT":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+strings.Join(path, string(filepath.ListSeparator)), "KITRUN_CACHE="+assemble.DefaultCacheDir())
}

// TestInstalledKitrunBuildsAndBoots is kitrun as a user has it: built with
// -trimpath, copied out of the checkout, run from a directory outside it
// with no Go toolchain on PATH. A spec without `go:` entries must build
// (kitinit and kitsshd come from inside kitrun) and boot to all-ready.
func TestInstalledKitrunBuildsAndBoots(t *testing.T) {
	qemutest.Require(t, "x86_64")
	built := buildKitrunWith(t, t.TempDir(), "-trimpath")
	home := t.TempDir()
	bin := filepath.Join(home, "bin", "kitrun")
	data, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(home, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := `version: 1
name: installed
kernel: {package: linux-image-cloud, cmdline: quiet}
ssh: true
files:
  - path: /etc/motd
    contents: "installed kitrun\n"
services:
  - name: sleeper
    binary: /usr/bin/sleep
    args: [infinity]
`
	if err := os.WriteFile(filepath.Join(work, "installed.yml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	env := installedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kitrun := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kitrun %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := kitrun("build", "installed.yml", "-o", "out", "--arch", "x86_64")
	if strings.Contains(out, "from the kitrun checkout") {
		t.Errorf("an installed kitrun built guest programs from source:\n%s", out)
	}
	img, err := image.Load(filepath.Join(work, "out", "installed"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kitinit": "/init", "kitsshd": "/usr/sbin/kitsshd"}
	for _, g := range img.Manifest.Guest {
		emb, err := guestbin.EmbeddedBinary(g.Name, img.Arch)
		if err != nil {
			t.Fatal(err)
		}
		if g.From != guestbin.FromEmbedded || g.SHA256 != emb.SHA256 || g.Path != want[g.Name] {
			t.Errorf("manifest: %+v; want %s at %s from the embedded copy %.16s", g, g.Name, want[g.Name], emb.SHA256)
		}
		delete(want, g.Name)
	}
	if len(want) > 0 {
		t.Errorf("manifest lists no guest programs %v", want)
	}

	out = kitrun("run", filepath.Join("out", "installed"), "--until-ready", "--accel", "tcg", "--timeout", "2m",
		"--console-log", filepath.Join(work, "console.log"))
	t.Log(out)

	if v := kitrun("--version"); !versionLine.MatchString(v) {
		t.Errorf("kitrun --version of a -trimpath build: %q does not match %s", v, versionLine)
	}
}

// versionLine is what `kitrun --version` prints.
var versionLine = regexp.MustCompile(`^kitrun version (\(devel\)( [0-9a-f]{12}(\+dirty)?)?|v\S+) \(go1\.\d+(\.\d+)?\S* ` + runtime.GOOS + "/" + runtime.GOARCH + `\)\n$`)

// TestVersion checks `kitrun --version` and `kitrun version` for a build
// given a version at link time (the Makefile's) and a plain one, whose
// version comes from the build information Go recorded.
func TestVersion(t *testing.T) {
	linked := buildKitrunWith(t, t.TempDir(), "-trimpath", "-ldflags", "-X github.com/kitrun/kitrun/internal/version.version=v9.8.7-test")
	out, err := exec.Command(linked, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "kitrun version v9.8.7-test (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"; string(out) != want {
		t.Errorf("--version with -ldflags: got %q, want %q", out, want)
	}
	out, err = exec.Command(linked, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	m, err := guestbin.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version   v9.8.7-test\n", "go        " + runtime.Version(),
		"embedded  kitinit, kitsshd, floorinit for " + strings.Join(m.Arches(), ", ") + ", built with " + strings.Join(m.GoVersions(), ", ")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kitrun version: %q lacks %q", out, want)
		}
	}

	// A plain build in a git checkout, stamped with its revision when the
	// toolchain finds the repository (not from a git worktree).
	plain := buildKitrunWith(t, t.TempDir(), "-buildvcs=auto")
	out, err = exec.Command(plain, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !versionLine.MatchString(string(out)) {
		t.Errorf("--version of a plain build: %q does not match %s", out, versionLine)
	}
	info, err := exec.Command("go", "version", "-m", plain).Output()
	if err != nil {
		t.Fatal(err)
	}
	if rev := regexp.MustCompile(`vcs\.revision=([0-9a-f]{12})`).FindSubmatch(info); rev != nil && !strings.Contains(string(out), string(rev[1])) {
		t.Errorf("--version %q does not name the revision %s the build recorded", out, rev[1])
	}
}

// TestBuildSaysWhenGuestProgramsComeFromSource builds from a checkout whose
// kitinit differs from the embedded one: the build log says it was built
// from that checkout, and the manifest says "source".
func TestBuildSaysWhenGuestProgramsComeFromSource(t *testing.T) {
	qemutest.Require(t, "x86_64")
	m, err := guestbin.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	src, _ := m.Source(guestbin.Kitinit)
	root := qemutest.RepoRoot(t)
	checkout := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		copyTo(t, filepath.Join(root, f), filepath.Join(checkout, f))
	}
	for _, dir := range src.Packages {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				copyTo(t, filepath.Join(root, dir, e.Name()), filepath.Join(checkout, dir, e.Name()))
			}
		}
	}
	doc := filepath.Join(checkout, "boot", "kitinit", "doc.go")
	f, err := os.OpenFile(doc, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n// A developer's edit.\n")
	f.Close()
	specPath := qemutest.WriteSpec(t, "fromsource", "version: 1\nname: fromsource\nkernel: {package: linux-image-cloud}\n")
	out := t.TempDir()
	cmd := exec.Command(buildKitrun(t), "build", specPath, "-o", out, "--arch", "x86_64")
	cmd.Env = append(os.Environ(), "KITRUN_SRC="+checkout)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kitrun build: %v\n%s", err, log)
	}
	if !strings.Contains(string(log), "kitinit built from the kitrun checkout "+checkout) {
		t.Errorf("the build log does not say kitinit came from %s:\n%s", checkout, log)
	}
	mj, err := os.ReadFile(filepath.Join(out, "fromsource", image.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var man image.Manifest
	if err := json.Unmarshal(mj, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.Guest) != 1 || man.Guest[0].Name != "kitinit" || man.Guest[0].From != guestbin.FromSource {
		t.Errorf("manifest guest programs: %+v; want kitinit from source", man.Guest)
	}
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
