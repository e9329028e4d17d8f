package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// BlobPrefix is where uploads go in the container; a blob lives only
// until its import ends.
const BlobPrefix = "kitrun/"

// ImageDiskPrefix names the managed disks that are images (one per disk
// digest, kept for reuse); a machine's OS disk is a copy of one.
const ImageDiskPrefix = "kitrun-img-"

// PageRange is the largest range one Put Page call writes (4 MiB).
const PageRange = 4 << 20

type imageStore struct {
	b    *Backend
	c    *clients
	path string // the VHD
	name string
}

func (s *imageStore) Key() string {
	return strings.Join([]string{s.b.cfg.Subscription, s.b.cfg.ResourceGroup, s.b.cfg.ARMEndpoint}, "|")
}

// Find implements cloud.ImageStore: the newest image disk tagged with the
// digest; its expiry is renewed (it is in use).
func (s *imageStore) Find(ctx context.Context, digest string) (string, bool, error) {
	var found []*armcompute.Disk
	p := s.c.disks.NewListByResourceGroupPager(s.b.cfg.ResourceGroup, nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", false, fmt.Errorf("azure: looking up an image of digest %s: %w", digest[:12], err)
		}
		for _, d := range page.Value {
			if d.Name == nil || !strings.HasPrefix(*d.Name, ImageDiskPrefix) || d.Tags[cloud.TagDigest] == nil || *d.Tags[cloud.TagDigest] != digest {
				continue
			}
			if d.Properties == nil || d.Properties.ProvisioningState == nil || *d.Properties.ProvisioningState != "Succeeded" {
				continue
			}
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return "", false, nil
	}
	sort.Slice(found, func(i, j int) bool {
		return tagOf(found[i].Tags, cloud.TagCreated) > tagOf(found[j].Tags, cloud.TagCreated)
	})
	d := found[0]
	d.Tags[cloud.TagExpires] = to.Ptr(time.Now().Add(s.b.cfg.ImageTTL).UTC().Format(time.RFC3339))
	poller, err := s.c.disks.BeginUpdate(ctx, s.b.cfg.ResourceGroup, *d.Name, armcompute.DiskUpdate{Tags: d.Tags}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, pollOpts)
	}
	if err != nil {
		return "", false, fmt.Errorf("azure: renewing image disk %s: %w", *d.Name, err)
	}
	return *d.Name, true, nil
}

var pollOpts = &runtime.PollUntilDoneOptions{Frequency: time.Second}

func tagOf(tags map[string]*string, k string) string {
	if v := tags[k]; v != nil {
		return *v
	}
	return ""
}

func tagPtrs(m map[string]string) map[string]*string {
	out := map[string]*string{}
	for k, v := range m {
		out[k] = to.Ptr(v)
	}
	return out
}

// Upload implements cloud.ImageStore: the VHD to a page blob (only its
// non-zero 4 MiB ranges), a managed disk imported from it, the blob
// deleted whatever happens.
func (s *imageStore) Upload(ctx context.Context, digest string) (id string, err error) {
	if s.b.cfg.BlobEndpoint == "" {
		return "", errors.New("azure: uploading an image needs a storage account in the location: give --backend-opt storage-account=NAME")
	}
	f, err := os.Open(s.path)
	if err != nil {
		return "", fmt.Errorf("azure: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("azure: %w", err)
	}
	if st.Size()%512 != 0 || st.Size() < 1<<20 {
		return "", fmt.Errorf("azure: %s is not a fixed VHD (%d bytes, not whole 512-byte pages): rebuild the image", s.path, st.Size())
	}
	name := fmt.Sprintf("%s%s-%s.vhd", BlobPrefix, digest[:16], cloud.RunID())
	blobURL := strings.TrimSuffix(s.b.cfg.BlobEndpoint, "/") + "/" + s.b.cfg.Container + "/" + name
	pb, err := pageblob.NewClient(blobURL, s.c.cred, &pageblob.ClientOptions{ClientOptions: s.c.blobO})
	if err != nil {
		return "", fmt.Errorf("azure: %w", err)
	}
	now := time.Now()
	tags := cloud.Tags(now, s.b.cfg.ImageTTL, map[string]string{cloud.TagDigest: digest, cloud.TagName: s.name})
	if _, err := pb.Create(ctx, st.Size(), &pageblob.CreateOptions{Metadata: map[string]*string{
		"kitrunrun": to.Ptr(cloud.RunID()), "kitrundigest": to.Ptr(digest)}}); err != nil {
		return "", fmt.Errorf("azure: creating page blob %s: %w", blobURL, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, derr := pb.Delete(dctx, nil); derr != nil {
			err = errors.Join(err, fmt.Errorf("azure: blob %s is left for `kitrun cloud sweep --backend azure`: %w", blobURL, derr))
		}
	}()
	if err := uploadPages(ctx, pb, f, st.Size()); err != nil {
		return "", fmt.Errorf("azure: uploading %s to %s: %w", s.path, blobURL, err)
	}
	diskName := fmt.Sprintf("%s%s-%s", ImageDiskPrefix, digest[:16], shortID())
	poller, err := s.c.disks.BeginCreateOrUpdate(ctx, s.b.cfg.ResourceGroup, diskName, armcompute.Disk{
		Location: to.Ptr(s.b.cfg.Location),
		Tags:     tagPtrs(tags),
		SKU:      &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypesStandardLRS)},
		Properties: &armcompute.DiskProperties{
			OSType:           to.Ptr(armcompute.OperatingSystemTypesLinux),
			HyperVGeneration: to.Ptr(armcompute.HyperVGenerationV2),
			CreationData: &armcompute.CreationData{
				CreateOption: to.Ptr(armcompute.DiskCreateOptionImport),
				SourceURI:    to.Ptr(blobURL),
			},
		},
	}, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, pollOpts)
	}
	if err != nil {
		err = fmt.Errorf("azure: importing %s as managed disk %s: %w", blobURL, diskName, err)
		return "", errors.Join(err, s.b.deleteDisk(diskName))
	}
	return diskName, nil
}

// uploadPages writes the file's non-zero ranges (≤ 4 MiB each): a new
// page blob reads as zeros, and the VHD is sparse.
func uploadPages(ctx context.Context, pb *pageblob.Client, f io.ReaderAt, size int64) error {
	buf := make([]byte, PageRange)
	for off := int64(0); off < size; off += PageRange {
		n := int(min(PageRange, size-off))
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return err
		}
		chunk := buf[:n]
		for len(chunk) > 0 && allZero(chunk[:512]) {
			chunk = chunk[512:]
		}
		if len(chunk) == 0 {
			continue
		}
		start := off + int64(n-len(chunk))
		for len(chunk) > 0 && allZero(chunk[len(chunk)-512:]) {
			chunk = chunk[:len(chunk)-512]
		}
		if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(chunk)),
			blob.HTTPRange{Offset: start, Count: int64(len(chunk))}, nil); err != nil {
			return err
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
