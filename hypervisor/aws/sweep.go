package aws

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Sweep implements cloud.Sweeper: every resource tagged kitrun:run in the
// region that is due (cloud.SweepOptions.Due) is deleted: instances
// (terminated), images (deregistered), snapshots, security groups, and the
// uploads under ObjectPrefix in the bucket (when one is given), which live
// only while an import runs. A security group whose instance is still
// terminating cannot be deleted yet: it is reported, for the next sweep.
func (b *Backend) Sweep(ctx context.Context, o cloud.SweepOptions) (*cloud.SweepReport, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	rep := &cloud.SweepReport{}
	tagged := []types.Filter{{Name: aws.String("tag-key"), Values: []string{cloud.TagRun}}}
	do := func(r cloud.Resource, del func() error) {
		if due, _ := o.Due(r); !due {
			rep.Kept = append(rep.Kept, r)
			return
		}
		if !o.DryRun {
			if err := del(); err != nil {
				rep.Failed = append(rep.Failed, cloud.SweepFailure{Resource: r, Err: err})
				return
			}
		}
		rep.Removed = append(rep.Removed, r)
	}

	// Instances first: their groups and volumes go with them.
	ip := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{Filters: append(tagged,
		types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}})})
	for ip.HasMorePages() {
		out, err := ip.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("aws: listing instances: %w", err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				id := aws.ToString(in.InstanceId)
				res := cloud.Resource{Kind: "instance", ID: id, Tags: tagMap(in.Tags), State: string(in.State.Name)}
				if in.State.Name == "shutting-down" {
					if due, _ := o.Due(res); due {
						rep.Removed = append(rep.Removed, res) // already going
						continue
					}
				}
				do(res, func() error {
					_, err := c.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
					return err
				})
			}
		}
	}

	imgs, err := c.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: tagged})
	if err != nil {
		return rep, fmt.Errorf("aws: listing images: %w", err)
	}
	for _, im := range imgs.Images {
		id := aws.ToString(im.ImageId)
		do(cloud.Resource{Kind: "image", ID: id, Tags: tagMap(im.Tags), State: string(im.State)}, func() error {
			_, err := c.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)})
			return err
		})
	}

	sp := ec2.NewDescribeSnapshotsPaginator(c.ec2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: tagged})
	for sp.HasMorePages() {
		out, err := sp.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("aws: listing snapshots: %w", err)
		}
		for _, s := range out.Snapshots {
			id := aws.ToString(s.SnapshotId)
			do(cloud.Resource{Kind: "snapshot", ID: id, Tags: tagMap(s.Tags), State: string(s.State)}, func() error {
				_, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
				return err
			})
		}
	}

	gp := ec2.NewDescribeSecurityGroupsPaginator(c.ec2, &ec2.DescribeSecurityGroupsInput{Filters: tagged})
	for gp.HasMorePages() {
		out, err := gp.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("aws: listing security groups: %w", err)
		}
		for _, g := range out.SecurityGroups {
			id := aws.ToString(g.GroupId)
			do(cloud.Resource{Kind: "security-group", ID: id, Tags: tagMap(g.Tags)}, func() error {
				_, err := c.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
				if err != nil && strings.Contains(err.Error(), "DependencyViolation") {
					return fmt.Errorf("still in use (its instance is terminating; sweep again in a minute): %w", err)
				}
				return err
			})
		}
	}

	if b.cfg.Bucket != "" {
		op := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: aws.String(b.cfg.Bucket), Prefix: aws.String(ObjectPrefix)})
		for op.HasMorePages() {
			out, err := op.NextPage(ctx)
			if err != nil {
				return rep, fmt.Errorf("aws: listing s3://%s/%s: %w", b.cfg.Bucket, ObjectPrefix, err)
			}
			for _, ob := range out.Contents {
				key := aws.ToString(ob.Key)
				// An upload lives while its import runs: its key
				// names the run, and it expires with the import's
				// deadline.
				mod := aws.ToTime(ob.LastModified)
				run := strings.TrimSuffix(key[strings.LastIndexByte(key, '/')+1:], ".raw")
				if i := strings.IndexByte(run, '-'); i >= 0 {
					run = run[i+1:]
				}
				tags := map[string]string{cloud.TagRun: run, cloud.TagCreated: mod.UTC().Format(time.RFC3339),
					cloud.TagExpires: mod.Add(b.cfg.ImportTimeout).UTC().Format(time.RFC3339)}
				do(cloud.Resource{Kind: "object", ID: "s3://" + b.cfg.Bucket + "/" + key, Tags: tags}, func() error {
					_, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(key)})
					return err
				})
			}
		}
	}
	return rep, nil
}
