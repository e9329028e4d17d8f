package cmdutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// gitTimeout bounds asking git for a commit: a hung git (a network file
// system, a lock) must not hold up a bench.
const gitTimeout = 5 * time.Second

// GitCommit returns the commit checked out in the git repository that
// holds path (a spec file or an image directory), with "-dirty" appended
// when the work tree has changes; "" when path is in no repository or git
// is missing.
func GitCommit(ctx context.Context, path string) string {
	dir := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	}
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(status))) > 0 {
		commit += "-dirty"
	}
	return commit
}
