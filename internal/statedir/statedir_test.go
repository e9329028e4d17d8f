package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDirFor(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	noHome := func() (string, error) { return "", errors.New("no home") }
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, c := range []struct {
		goos string
		env  map[string]string
		home func() (string, error)
		want string
	}{
		{"linux", nil, home, "/home/u/.local/state/kitrun"},
		{"freebsd", nil, home, "/home/u/.local/state/kitrun"},
		{"linux", map[string]string{"XDG_STATE_HOME": "/xdg"}, home, "/xdg/kitrun"},
		{"linux", map[string]string{"XDG_STATE_HOME": "relative"}, home, "/home/u/.local/state/kitrun"},
		{"darwin", nil, home, "/home/u/Library/Application Support/kitrun"},
		{"darwin", map[string]string{"XDG_STATE_HOME": "/xdg"}, home, "/xdg/kitrun"},
		{"windows", map[string]string{"LOCALAPPDATA": "/lad"}, home, filepath.Join("/lad", "kitrun", "state")},
		{"windows", nil, home, "/home/u/AppData/Local/kitrun/state"},
		{"linux", nil, noHome, filepath.Join(os.TempDir(), "kitrun-state")},
	} {
		if got := dirFor(c.goos, env(c.env), c.home); got != c.want {
			t.Errorf("%s %v: %s, want %s", c.goos, c.env, got, c.want)
		}
	}
}
