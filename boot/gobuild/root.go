package gobuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

const kitrunModule = "github.com/kitrun/kitrun"

// KitrunRoot finds the kitrun module root: the option, $KITRUN_SRC, the
// directory this file was compiled from, or a parent of the working
// directory.
func KitrunRoot(explicit string) (string, error) {
	var candidates []string
	if explicit != "" {
		candidates = append(candidates, explicit)
	}
	if env := os.Getenv("KITRUN_SRC"); env != "" {
		candidates = append(candidates, env)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Dir(filepath.Dir(filepath.Dir(file)))) // this file is boot/gobuild/root.go
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
