package assemble

import (
	"context"
	"path/filepath"

	"github.com/kitrun/kitrun/boot/gobuild"
)

// buildKitinit builds kitinit for the target arch from kitrun's own source.
// Building it (rather than embedding prebuilt binaries) keeps one source of
// truth for every arch in the table; gobuild's cache makes it free when
// nothing changed.
func (b *builder) buildKitinit(ctx context.Context) (string, error) {
	root, err := gobuild.KitrunRoot(b.opts.KitrunSource)
	if err != nil {
		return "", err
	}
	return b.gob.Build(ctx, filepath.Join(root, "boot", "kitinit", "cmd", "kitinit"), b.arch.GOARCH)
}
