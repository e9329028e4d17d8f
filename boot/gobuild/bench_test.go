package gobuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// largeRepoFiles is the size of the repository the warm-build benchmark
// builds a small program in.
const largeRepoFiles = 50_000

var largeRepo struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if largeRepo.dir != "" {
		os.RemoveAll(largeRepo.dir)
	}
	os.Exit(code)
}

// makeLargeRepo writes a module of largeRepoFiles files: a small program
// (cmd/app, importing two of the module's packages, one with an embedded
// file) among 490 other packages of 100 Go files and data files each.
func makeLargeRepo() (string, error) {
	dir, err := os.MkdirTemp("", "gobuild-bench-")
	if err != nil {
		return "", err
	}
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err == nil {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
	}
	write("go.mod", "module example.com/big\n\ngo 1.22\n")
	write("cmd/app/main.go", "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/big/pkg/a\"\n\t\"example.com/big/pkg/b\"\n)\n\nfunc main() { fmt.Println(a.A, b.B) }\n")
	write("pkg/a/a.go", "package a\n\nconst A = 1\n")
	write("pkg/b/b.go", "package b\n\nimport _ \"embed\"\n\n//go:embed data.txt\nvar B string\n")
	write("pkg/b/data.txt", "data\n")
	n := 5
	for i := 0; n < largeRepoFiles; i++ {
		for j := 0; j < 100 && n < largeRepoFiles; j++ {
			if j%2 == 0 {
				write(fmt.Sprintf("internal/p%03d/f%03d.go", i, j), fmt.Sprintf("package p%03d\n\nconst C%03d = %d\n", i, j, j))
			} else {
				write(fmt.Sprintf("internal/p%03d/data/f%03d.json", i, j), "{}\n")
			}
			n++
		}
	}
	return dir, err
}

// BenchmarkWarmBuildLargeRepo is the cost of Build for a program whose
// binary is cached, inside a repository of 50,000 files.
func BenchmarkWarmBuildLargeRepo(b *testing.B) {
	if _, err := exec.LookPath("go"); err != nil {
		b.Skip("no Go toolchain")
	}
	largeRepo.once.Do(func() { largeRepo.dir, largeRepo.err = makeLargeRepo() })
	if largeRepo.err != nil {
		b.Fatal(largeRepo.err)
	}
	bd := &Builder{CacheDir: b.TempDir()}
	app := filepath.Join(largeRepo.dir, "cmd", "app")
	cold, err := bd.Build(context.Background(), app, runtime.GOARCH)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		warm, err := bd.Build(context.Background(), app, runtime.GOARCH)
		if err != nil || warm != cold {
			b.Fatalf("warm build: %s, %v (cold: %s)", warm, err, cold)
		}
	}
	b.ReportMetric(largeRepoFiles, "files")
}
