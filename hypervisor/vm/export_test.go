package vm

import (
	"context"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/sshkeys"
	"github.com/kitrun/kitrun/hypervisor"
)

// BuildSnapshot builds img's snapshot (replacing any) and returns its key
// and the build boot's SSH keys, which no restored VM may accept.
func (s *Snapshots) BuildSnapshot(ctx context.Context, backend hypervisor.Backend, img *image.Image, opts Options) (string, *sshkeys.Keys, error) {
	sn := backend.(hypervisor.Snapshotter)
	key, err := sn.SnapshotKey(ctx, snapshotSpec(img, opts))
	if err != nil {
		return "", nil, err
	}
	keys, err := s.build(ctx, backend, sn, img, opts, key, s.Dir+"/"+key)
	return key, keys, err
}
