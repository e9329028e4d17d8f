package cloud

import (
	"context"
	"sync"
)

// ImageStore is a cloud's store of bootable images, keyed by content
// digest.
type ImageStore interface {
	// Key names the store (account, region, endpoint): images are shared
	// within it.
	Key() string
	// Find returns the usable image with this digest, if there is one.
	Find(ctx context.Context, digest string) (id string, found bool, err error)
	// Upload makes an image of the disk with this digest and returns its
	// ID. A failed upload leaves nothing behind that Upload would not
	// clean up itself, or that sweep does not find.
	Upload(ctx context.Context, digest string) (id string, err error)
}

type imageCall struct {
	done chan struct{}
	id   string
	err  error
}

var (
	imageMu    sync.Mutex
	imageCalls = map[string]*imageCall{} // in flight
)

// EnsureImage returns the store's image of the disk with this digest,
// uploading it only when the store has none. Concurrent callers in this
// process share one lookup and, if needed, one upload; a later caller (of
// this process or another) finds the image by its digest. reused says that
// the image existed, or that another caller made it.
func EnsureImage(ctx context.Context, s ImageStore, digest string) (id string, reused bool, err error) {
	key := s.Key() + "\x00" + digest
	for {
		imageMu.Lock()
		c, inFlight := imageCalls[key]
		if !inFlight {
			c = &imageCall{done: make(chan struct{})}
			imageCalls[key] = c
		}
		imageMu.Unlock()
		if inFlight {
			select {
			case <-c.done:
			case <-ctx.Done():
				return "", false, ctx.Err()
			}
			if c.err == nil {
				return c.id, true, nil
			}
			continue // that attempt failed: make our own
		}
		id, reused, err = findOrUpload(ctx, s, digest)
		c.id, c.err = id, err
		imageMu.Lock()
		delete(imageCalls, key)
		imageMu.Unlock()
		close(c.done)
		return id, reused, err
	}
}

func findOrUpload(ctx context.Context, s ImageStore, digest string) (string, bool, error) {
	if id, ok, err := s.Find(ctx, digest); err != nil {
		return "", false, err
	} else if ok {
		return id, true, nil
	}
	id, err := s.Upload(ctx, digest)
	return id, false, err
}
