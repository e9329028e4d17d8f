// Package statedir owns where kitrun keeps what outlives a run and is not a
// cache (detached VMs' state, bench results, the bench history), by each
// OS's convention. Caches are os.UserCacheDir's (boot/assemble); runtime
// files are boot/runtimedir's.
package statedir

import (
	"os"
	"path/filepath"
	"runtime"
)

// Dir is kitrun's state directory: $XDG_STATE_HOME/kitrun where that is
// set (on any OS), else
//
//	Linux and other unix  ~/.local/state/kitrun
//	macOS                 ~/Library/Application Support/kitrun
//	Windows               %LOCALAPPDATA%\kitrun\state (the cache is %LOCALAPPDATA%\kitrun)
//
// and a directory under the temporary one when there is no home.
func Dir() string { return dirFor(runtime.GOOS, os.Getenv, os.UserHomeDir) }

func dirFor(goos string, getenv func(string) string, home func() (string, error)) string {
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "kitrun")
	}
	if goos == "windows" {
		if d := getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "kitrun", "state")
		}
	}
	h, err := home()
	if err != nil || h == "" {
		return filepath.Join(os.TempDir(), "kitrun-state")
	}
	switch goos {
	case "darwin", "ios":
		return filepath.Join(h, "Library", "Application Support", "kitrun")
	case "windows":
		return filepath.Join(h, "AppData", "Local", "kitrun", "state")
	}
	return filepath.Join(h, ".local", "state", "kitrun")
}
