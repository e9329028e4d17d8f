package gobuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/runtimedir"
)

// A module outside the program's module root, pulled in by a replace
// directive, and a program that embeds a file and has a build-tagged file.
func writeProgram(t *testing.T) (app, lib string) {
	t.Helper()
	dir := t.TempDir()
	app, lib = filepath.Join(dir, "app"), filepath.Join(dir, "lib")
	files := map[string]string{
		"lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
		"lib/lib.go": "package lib\n\nconst Word = \"lib-one\"\n",
		"app/go.mod": "module example.com/app\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n",
		"app/main.go": `package main

import (
	_ "embed"
	"fmt"

	"example.com/lib"
)

//go:embed msg.txt
var msg string

func main() { fmt.Print(msg, " ", lib.Word, " ", flavour) }
`,
		"app/msg.txt":    "embedded-one",
		"app/plain.go":   "//go:build !special\n\npackage main\n\nconst flavour = \"plain\"\n",
		"app/special.go": "//go:build special\n\npackage main\n\nconst flavour = \"special\"\n",
		"app/README.md":  "not an input\n",
		"app/other/x.go": "package other\n",
		"app/testdata/y": "not an input\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return app, lib
}

// build builds app for the host's arch and returns the binary and what it
// prints.
func build(t *testing.T, b *Builder, app string) (string, string) {
	t.Helper()
	bin, err := b.Build(context.Background(), app, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		return bin, ""
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return bin, string(out)
}

// edit rewrites a file keeping its size and modification time, which a
// key made of names, sizes and times cannot see.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if len(old) != len(new) || !strings.Contains(string(b), old) {
		t.Fatalf("bad edit of %s", path)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, st.ModTime(), st.ModTime())
}

func TestCacheKeyFollowsTheRealInputs(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no Go toolchain")
	}
	t.Setenv("GOFLAGS", "")
	b := &Builder{CacheDir: t.TempDir()}
	app, lib := writeProgram(t)
	bin, out := build(t, b, app)
	if runtime.GOOS == "linux" && out != "embedded-one lib-one plain" {
		t.Fatalf("first build prints %q", out)
	}
	st1, _ := os.Stat(bin)

	// Unchanged, or changed where the build does not look (a file outside
	// the package, a touched file with the same content): a cache hit.
	os.WriteFile(filepath.Join(app, "README.md"), []byte("still not an input, but longer\n"), 0o644)
	os.WriteFile(filepath.Join(app, "other", "x.go"), []byte("package other\n\nconst Y = 1\n"), 0o644)
	// The environment's GOFLAGS is not the build's (it is cleared).
	t.Setenv("GOFLAGS", "-tags=special")
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(app, "main.go"), later, later)
	again, _ := build(t, b, app)
	if st2, err := os.Stat(again); again != bin || err != nil || !os.SameFile(st1, st2) {
		t.Errorf("an unchanged program was rebuilt: %s, then %s", bin, again)
	}

	steps := []struct {
		what   string
		change func()
		want   string
	}{
		{"an embedded file", func() { edit(t, filepath.Join(app, "msg.txt"), "one", "two") }, "embedded-two lib-one plain"},
		{"a replaced module outside the root", func() { edit(t, filepath.Join(lib, "lib.go"), "one", "two") }, "embedded-two lib-two plain"},
		{"build tags in the Builder's GOFLAGS", func() { b.Env = []string{"GOFLAGS=-tags=special"} }, "embedded-two lib-two special"},
	}
	seen := map[string]string{bin: "the first build"}
	for _, s := range steps {
		s.change()
		bin, out := build(t, b, app)
		if prev, ok := seen[bin]; ok {
			t.Errorf("after a change to %s the cached build of %s was used", s.what, prev)
		}
		seen[bin] = s.what
		if runtime.GOOS == "linux" && out != s.want {
			t.Errorf("after a change to %s the program prints %q, want %q", s.what, out, s.want)
		}
	}
}

func TestBuildErrorNamesThePackage(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no Go toolchain")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/bad\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644)
	b := &Builder{CacheDir: t.TempDir()}
	_, err := b.Build(context.Background(), dir, runtime.GOARCH)
	if err == nil || !strings.Contains(err.Error(), "go build "+dir) || !strings.Contains(err.Error(), "undefined: undefinedThing") {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(b.CacheDir); len(ents) != 0 {
		t.Errorf("a failed build left %d entries in the cache", len(ents))
	}
}

// TestGoWorkInRuntimeDir: the go tool's work directories go into this
// process's runtime directory (swept after a kill -9 of kitrun), not into
// $TMPDIR, where a killed build's go-build* directory would stay.
func TestGoWorkInRuntimeDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the wrapper is a shell script")
	}
	t.Setenv("GOTMPDIR", "")
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "gotmpdir.log")
	wrapper := filepath.Join(dir, "go")
	script := "#!/bin/sh\necho \"$GOTMPDIR\" >> " + log + "\nexec " + goTool + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	app, _ := writeProgram(t)
	build(t, &Builder{CacheDir: filepath.Join(dir, "cache"), GoTool: wrapper}, app)
	rt, err := runtimedir.Dir()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Fields(string(b))
	if len(lines) < 2 {
		t.Fatalf("the go tool ran %d times, want go env, go list and go build", len(lines))
	}
	for _, l := range lines {
		if l != rt {
			t.Errorf("the go tool ran with GOTMPDIR=%q, want the runtime directory %s", l, rt)
		}
	}
}
