package aws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// ObjectPrefix is where uploads go in the bucket; an object lives only
// until its import ends, and sweep removes any under it that outlived that.
const ObjectPrefix = "kitrun/"

// imageStore makes AMIs of one image's aws disk.
type imageStore struct {
	b        *Backend
	c        *clients
	manifest *awsimport.Manifest
	dir      string
	name     string
}

func (s *imageStore) Key() string {
	return fmt.Sprintf("%s|%s|%s", s.c.region, s.b.cfg.EC2Endpoint, s.b.cfg.Bucket)
}

func tagList(m map[string]string) []types.Tag {
	var tags []types.Tag
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

func tagSpec(rt types.ResourceType, m map[string]string) types.TagSpecification {
	return types.TagSpecification{ResourceType: rt, Tags: tagList(m)}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// Find implements cloud.ImageStore: the newest available AMI of this
// account tagged with the digest. Its expiry (and its snapshot's) is
// renewed: it is in use.
func (s *imageStore) Find(ctx context.Context, digest string) (string, bool, error) {
	out, err := s.c.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners: []string{"self"},
		Filters: []types.Filter{
			{Name: aws.String("tag:" + cloud.TagDigest), Values: []string{digest}},
			{Name: aws.String("state"), Values: []string{"available"}},
		},
	})
	if err != nil {
		return "", false, fmt.Errorf("aws: looking up an image of digest %s: %w", digest[:12], err)
	}
	if len(out.Images) == 0 {
		return "", false, nil
	}
	imgs := out.Images
	sort.Slice(imgs, func(i, j int) bool { return aws.ToString(imgs[i].CreationDate) > aws.ToString(imgs[j].CreationDate) })
	img := imgs[0]
	ids := []string{aws.ToString(img.ImageId)}
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.SnapshotId != nil {
			ids = append(ids, *m.Ebs.SnapshotId)
		}
	}
	exp := time.Now().Add(s.b.cfg.ImageTTL).UTC().Format(time.RFC3339)
	if _, err := s.c.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids,
		Tags: []types.Tag{{Key: aws.String(cloud.TagExpires), Value: aws.String(exp)}}}); err != nil {
		return "", false, fmt.Errorf("aws: renewing image %s: %w", ids[0], err)
	}
	return ids[0], true, nil
}

// Upload implements cloud.ImageStore: the disk to S3, ImportSnapshot,
// RegisterImage. The S3 object is deleted whatever happens (it is needed
// only by the import); a snapshot whose image could not be registered is
// deleted; anything a crash leaves is tagged for sweep.
func (s *imageStore) Upload(ctx context.Context, digest string) (id string, err error) {
	if s.b.cfg.Bucket == "" {
		return "", errors.New("aws: uploading an image needs an S3 bucket in the region: give --backend-opt bucket=NAME")
	}
	m := s.manifest
	path := filepath.Join(s.dir, m.Disk.File)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("aws: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("aws: %w", err)
	}
	if st.Size() != m.Disk.Size {
		return "", fmt.Errorf("aws: %s is %d bytes, its manifest says %d: rebuild the image", path, st.Size(), m.Disk.Size)
	}
	const maxPut = 5 << 30
	if st.Size() > maxPut {
		return "", fmt.Errorf("aws: %s is larger than one S3 PUT takes (5 GiB)", path)
	}
	now := time.Now()
	tags := cloud.Tags(now, s.b.cfg.ImageTTL, map[string]string{cloud.TagDigest: digest, cloud.TagName: m.RegisterImage.Name})
	// The object's key holds the digest and the run: two runs uploading
	// the same disk do not delete each other's object.
	key := fmt.Sprintf("%s%s-%s.raw", ObjectPrefix, digest[:16], cloud.RunID())
	// One PUT is atomic: cut short, it leaves no object (a multipart
	// upload would leave parts to abort). The SDK retries it from the
	// start (the file is seekable).
	_, err = s.c.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.b.cfg.Bucket), Key: aws.String(key), Body: f,
		ContentLength: aws.Int64(st.Size()),
		Metadata:      map[string]string{"kitrun-run": cloud.RunID(), "kitrun-digest": digest},
	})
	if err != nil {
		return "", fmt.Errorf("aws: uploading %s to s3://%s/%s: %w", m.Disk.File, s.b.cfg.Bucket, key, err)
	}
	defer func() {
		// With a context of its own: the upload's may be what ended.
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, derr := s.c.s3.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(s.b.cfg.Bucket), Key: aws.String(key)}); derr != nil {
			err = errors.Join(err, fmt.Errorf("aws: s3://%s/%s is left for `kitrun cloud sweep --backend aws`: %w", s.b.cfg.Bucket, key, derr))
		}
	}()
	snap, err := s.importSnapshot(ctx, key, tags)
	if err != nil {
		return "", err
	}
	ri := m.RegisterImage
	var bdm []types.BlockDeviceMapping
	for _, d := range ri.BlockDeviceMappings {
		bdm = append(bdm, types.BlockDeviceMapping{DeviceName: aws.String(d.DeviceName), Ebs: &types.EbsBlockDevice{
			SnapshotId: aws.String(snap), VolumeSize: aws.Int32(int32(d.Ebs.VolumeSize)),
			VolumeType: types.VolumeType(d.Ebs.VolumeType), DeleteOnTermination: aws.Bool(d.Ebs.DeleteOnTermination),
		}})
	}
	out, err := s.c.ec2.RegisterImage(ctx, &ec2.RegisterImageInput{
		// AMI names are unique in a region: the run keeps two
		// concurrent registrations of one disk apart.
		Name:                aws.String(fmt.Sprintf("%s-%s", ri.Name, cloud.RunID()[:16])),
		Description:         aws.String(ri.Description),
		Architecture:        types.ArchitectureValues(ri.Architecture),
		BootMode:            types.BootModeValues(ri.BootMode),
		EnaSupport:          aws.Bool(ri.EnaSupport),
		RootDeviceName:      aws.String(ri.RootDeviceName),
		VirtualizationType:  aws.String(ri.VirtualizationType),
		ImdsSupport:         types.ImdsSupportValues(ri.ImdsSupport),
		BlockDeviceMappings: bdm,
		TagSpecifications:   []types.TagSpecification{tagSpec(types.ResourceTypeImage, tags)},
	})
	if err != nil {
		err = fmt.Errorf("aws: registering the image: %w", err)
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, derr := s.c.ec2.DeleteSnapshot(dctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); derr != nil {
			err = errors.Join(err, fmt.Errorf("aws: snapshot %s is left for sweep: %w", snap, derr))
		}
		return "", err
	}
	return aws.ToString(out.ImageId), nil
}

// importSnapshot imports the uploaded disk and waits for the snapshot,
// which it tags (an import task's tags are not the snapshot's).
func (s *imageStore) importSnapshot(ctx context.Context, key string, tags map[string]string) (string, error) {
	m := s.manifest
	out, err := s.c.ec2.ImportSnapshot(ctx, &ec2.ImportSnapshotInput{
		Description: aws.String(m.ImportSnapshot.Description),
		DiskContainer: &types.SnapshotDiskContainer{
			Description: aws.String(m.ImportSnapshot.DiskContainer.Description),
			Format:      aws.String(m.ImportSnapshot.DiskContainer.Format),
			UserBucket:  &types.UserBucket{S3Bucket: aws.String(s.b.cfg.Bucket), S3Key: aws.String(key)},
		},
		TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeImportSnapshotTask, tags)},
	})
	if err != nil {
		return "", fmt.Errorf("aws: ImportSnapshot of s3://%s/%s: %w", s.b.cfg.Bucket, key, err)
	}
	task := aws.ToString(out.ImportTaskId)
	deadline := time.Now().Add(s.b.cfg.ImportTimeout)
	for {
		d, err := s.c.ec2.DescribeImportSnapshotTasks(ctx, &ec2.DescribeImportSnapshotTasksInput{ImportTaskIds: []string{task}})
		if err != nil {
			return "", fmt.Errorf("aws: following import %s: %w", task, err)
		}
		if len(d.ImportSnapshotTasks) == 1 && d.ImportSnapshotTasks[0].SnapshotTaskDetail != nil {
			det := d.ImportSnapshotTasks[0].SnapshotTaskDetail
			switch aws.ToString(det.Status) {
			case "completed":
				snap := aws.ToString(det.SnapshotId)
				if _, err := s.c.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{snap}, Tags: tagList(tags)}); err != nil {
					return "", fmt.Errorf("aws: tagging snapshot %s: %w", snap, err)
				}
				return snap, nil
			case "deleted", "deleting":
				return "", fmt.Errorf("aws: import %s failed: %s", task, aws.ToString(det.StatusMessage))
			}
		}
		if time.Now().After(deadline) {
			s.cancelImport(task)
			return "", fmt.Errorf("aws: import %s did not complete within %s (import-timeout)", task, s.b.cfg.ImportTimeout)
		}
		select {
		case <-ctx.Done():
			s.cancelImport(task)
			return "", fmt.Errorf("aws: waiting for import %s: %w", task, ctx.Err())
		case <-time.After(min(s.b.cfg.Poll*2, 5*time.Second)):
		}
	}
}

func (s *imageStore) cancelImport(task string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.c.ec2.CancelImportTask(ctx, &ec2.CancelImportTaskInput{ImportTaskId: aws.String(task)})
}
