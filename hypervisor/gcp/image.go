package gcp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	storage "google.golang.org/api/storage/v1"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// ObjectPrefix is where uploads go in the bucket; an object lives only
// until its image is made, and sweep removes any under it that outlived
// that.
const ObjectPrefix = "kitrun/"

// OpError is a Compute Engine operation that ended in error.
type OpError struct {
	Op    string
	Codes []string
	Msgs  []string
}

func (e *OpError) Error() string {
	var parts []string
	for i := range e.Codes {
		parts = append(parts, e.Codes[i]+": "+e.Msgs[i])
	}
	return fmt.Sprintf("operation %s failed: %s", e.Op, strings.Join(parts, "; "))
}

// Has says whether the operation failed with this code.
func (e *OpError) Has(code string) bool {
	for _, c := range e.Codes {
		if c == code {
			return true
		}
	}
	return false
}

// wait follows an operation (global when zone is "") until it is done,
// within d.
func (b *Backend) wait(ctx context.Context, c *clients, op *compute.Operation, zone string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for op.Status != "DONE" {
		var err error
		op, err = retry(ctx, b, func() (*compute.Operation, error) {
			if zone != "" {
				return c.compute.ZoneOperations.Wait(c.project, zone, op.Name).Context(ctx).Do()
			}
			return c.compute.GlobalOperations.Wait(c.project, op.Name).Context(ctx).Do()
		})
		if err != nil {
			return fmt.Errorf("waiting for operation %s: %w", op.Name, err)
		}
		if op.Status != "DONE" {
			select {
			case <-ctx.Done():
				return fmt.Errorf("operation %s not done within %s", op.Name, d)
			case <-time.After(b.cfg.Poll):
			}
		}
	}
	if op.Error != nil && len(op.Error.Errors) > 0 {
		e := &OpError{Op: op.OperationType + " " + op.Name}
		for _, x := range op.Error.Errors {
			e.Codes = append(e.Codes, x.Code)
			e.Msgs = append(e.Msgs, x.Message)
		}
		return e
	}
	return nil
}

// imageStore makes Compute Engine images of one image's gcp disk.
type imageStore struct {
	b    *Backend
	c    *clients
	path string // the gcp.tar.gz
	size int64
	name string
}

func (s *imageStore) Key() string {
	return fmt.Sprintf("%s|%s|%s", s.c.project, s.b.cfg.Endpoint, s.b.cfg.Bucket)
}

// Find implements cloud.ImageStore: the newest ready image of the project
// labelled with the digest; its expiry is renewed (it is in use).
func (s *imageStore) Find(ctx context.Context, digest string) (string, bool, error) {
	c := s.c
	list, err := retry(ctx, s.b, func() (*compute.ImageList, error) {
		return c.compute.Images.List(c.project).Filter(fmt.Sprintf("labels.%s = %q", LabelDigest, labelValue(digest))).Context(ctx).Do()
	})
	if err != nil {
		return "", false, fmt.Errorf("gcp: looking up an image of digest %s: %w", digest[:12], err)
	}
	var imgs []*compute.Image
	for _, im := range list.Items {
		if im.Status == "READY" {
			imgs = append(imgs, im)
		}
	}
	if len(imgs) == 0 {
		return "", false, nil
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].CreationTimestamp > imgs[j].CreationTimestamp })
	im := imgs[0]
	l := map[string]string{}
	for k, v := range im.Labels {
		l[k] = v
	}
	for k, v := range labels(map[string]string{cloud.TagExpires: time.Now().Add(s.b.cfg.ImageTTL).UTC().Format(time.RFC3339)}) {
		l[k] = v
	}
	op, err := retry(ctx, s.b, func() (*compute.Operation, error) {
		return c.compute.Images.SetLabels(c.project, im.Name, &compute.GlobalSetLabelsRequest{Labels: l, LabelFingerprint: im.LabelFingerprint}).Context(ctx).Do()
	})
	if err == nil {
		err = s.b.wait(ctx, c, op, "", 5*time.Minute)
	}
	if err != nil {
		return "", false, fmt.Errorf("gcp: renewing image %s: %w", im.Name, err)
	}
	return im.Name, true, nil
}

// Upload implements cloud.ImageStore: the tar.gz to Cloud Storage, then
// images.insert from it. The object is deleted whatever happens (only the
// image's creation reads it); what a crash leaves is labelled for sweep.
func (s *imageStore) Upload(ctx context.Context, digest string) (id string, err error) {
	b, c := s.b, s.c
	if b.cfg.Bucket == "" {
		return "", errors.New("gcp: uploading an image needs a Cloud Storage bucket: give --backend-opt bucket=NAME")
	}
	f, err := os.Open(s.path)
	if err != nil {
		return "", fmt.Errorf("gcp: %w", err)
	}
	defer f.Close()
	tags := cloud.Tags(time.Now(), b.cfg.ImageTTL, map[string]string{cloud.TagDigest: digest, cloud.TagName: s.name})
	key := fmt.Sprintf("%s%s-%s.tar.gz", ObjectPrefix, digest[:16], runLabel())
	obj := &storage.Object{Name: key, ContentType: "application/gzip", Metadata: map[string]string{"kitrun-run": cloud.RunID(), "kitrun-digest": digest}}
	_, err = retry(ctx, b, func() (*storage.Object, error) {
		if _, err := f.Seek(0, 0); err != nil {
			return nil, err
		}
		return c.storage.Objects.Insert(b.cfg.Bucket, obj).Media(f, googleapi.ContentType("application/gzip")).Context(ctx).Do()
	})
	if err != nil {
		return "", fmt.Errorf("gcp: uploading %s to gs://%s/%s: %w", s.path, b.cfg.Bucket, key, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, derr := retry(dctx, b, func() (struct{}, error) {
			err := c.storage.Objects.Delete(b.cfg.Bucket, key).Context(dctx).Do()
			if notFound(err) {
				err = nil
			}
			return struct{}{}, err
		}); derr != nil {
			err = errors.Join(err, fmt.Errorf("gcp: gs://%s/%s is left for `kitrun cloud sweep --backend gcp`: %w", b.cfg.Bucket, key, derr))
		}
	}()
	features := []*compute.GuestOsFeature{{Type: "UEFI_COMPATIBLE"}}
	if b.cfg.GVNIC {
		features = append(features, &compute.GuestOsFeature{Type: "GVNIC"})
	}
	// Image names are unique in a project: the run keeps two
	// concurrent creations of one disk apart.
	name := resourceName("kitrun-" + digest[:12] + "-" + runLabel())
	img := &compute.Image{
		Name:        name,
		Description: "kitrun image " + s.name,
		// The only form images.insert takes, whatever the endpoints.
		RawDisk:         &compute.ImageRawDisk{Source: "https://storage.googleapis.com/" + b.cfg.Bucket + "/" + key},
		GuestOsFeatures: features,
		Labels:          labels(tags),
	}
	op, err := retry(ctx, b, func() (*compute.Operation, error) {
		return c.compute.Images.Insert(c.project, img).Context(ctx).Do()
	})
	if err == nil {
		err = b.wait(ctx, c, op, "", 30*time.Minute)
	}
	if err != nil {
		err = fmt.Errorf("gcp: creating image %s: %w", name, err)
		if op != nil {
			// A failed creation may still have left the image.
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if derr := b.deleteImage(dctx, c, name); derr != nil {
				err = errors.Join(err, fmt.Errorf("gcp: image %s is left for sweep: %w", name, derr))
			}
		}
		return "", err
	}
	return name, nil
}

// deleteImage deletes an image; one already gone is fine.
func (b *Backend) deleteImage(ctx context.Context, c *clients, name string) error {
	op, err := retry(ctx, b, func() (*compute.Operation, error) {
		return c.compute.Images.Delete(c.project, name).Context(ctx).Do()
	})
	if notFound(err) {
		return nil
	}
	if err == nil {
		err = b.wait(ctx, c, op, "", 5*time.Minute)
	}
	return err
}
