package assemble

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

const kitrunModule = "github.com/kitrun/kitrun"

// buildKitinit builds kitinit for the target arch from kitrun's own source.
// Building it (rather than embedding prebuilt binaries) keeps one source of
// truth for every arch in the table; gobuild's cache makes it free when
// nothing changed.
func (b *builder) buildKitinit(ctx context.Context) (string, error) {
	root, err := kitrunSource(b.opts.KitrunSource)
	if err != nil {
		return "", err
	}
	return b.gob.Build(ctx, filepath.Join(root, "boot", "kitinit", "cmd", "kitinit"), b.arch.GOARCH)
}

// kitrunSource finds the kitrun module root: the option, $KITRUN_SRC, the
// directory this file was compiled from, or a parent of the working
// directory.
func kitrunSource(explicit string) (string, error) {
	var candidates []string
	if explicit != "" {
		candidates = append(candidates, explicit)
	}
	if env := os.Getenv("KITRUN_SRC"); env != "" {
		candidates = append(candidates, env)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Dir(filepath.Dir(filepath.Dir(file))))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		mod, err := os.ReadFile(filepath.Join(c, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(mod), []byte("module "+kitrunModule)) {
			return c, nil
		}
	}
	return "", fmt.Errorf("kitinit is built from kitrun's source, which was not found; set KITRUN_SRC to a checkout of %s", kitrunModule)
}
