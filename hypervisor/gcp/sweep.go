package gcp

import (
	"context"
	"fmt"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"
	storage "google.golang.org/api/storage/v1"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Sweep implements cloud.Sweeper: kitrun's instances (in the zone),
// firewall rules, images and bucket objects that are due.
func (b *Backend) Sweep(ctx context.Context, o cloud.SweepOptions) (*cloud.SweepReport, error) {
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	if o.Run != "" {
		o.Run = labelValue(o.Run) // as the labels hold it
	}
	rep := &cloud.SweepReport{}
	consider := func(r cloud.Resource, remove func() error) {
		if due, _ := o.Due(r); !due {
			rep.Kept = append(rep.Kept, r)
			return
		}
		if o.DryRun {
			rep.Removed = append(rep.Removed, r)
			return
		}
		if err := remove(); err != nil {
			rep.Failed = append(rep.Failed, cloud.SweepFailure{Resource: r, Err: err})
			return
		}
		rep.Removed = append(rep.Removed, r)
	}
	filter := "labels." + LabelRun + ":*"
	// Instances first: their firewall rules and images go after them.
	err = c.compute.Instances.List(c.project, b.cfg.Zone).Filter(filter).Pages(ctx, func(l *compute.InstanceList) error {
		for _, in := range l.Items {
			name := in.Name
			consider(cloud.Resource{Kind: "instance", ID: name, Tags: tagsOf(in.Labels), State: in.Status}, func() error {
				return (&machine{b: b, c: c, name: name}).delete(ctx)
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gcp: listing instances: %w", err)
	}
	err = c.compute.Firewalls.List(c.project).Pages(ctx, func(l *compute.FirewallList) error {
		for _, fw := range l.Items {
			if !strings.HasPrefix(fw.Name, "kitrun-") || !strings.HasPrefix(fw.Description, "kitrun:") {
				continue
			}
			name := fw.Name
			consider(cloud.Resource{Kind: "firewall", ID: name, Tags: tagsOf(firewallLabels(fw.Description))}, func() error {
				return (&machine{b: b, c: c, firewall: name}).deleteFirewall(5 * time.Minute)
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gcp: listing firewall rules: %w", err)
	}
	err = c.compute.Images.List(c.project).Filter(filter).Pages(ctx, func(l *compute.ImageList) error {
		for _, im := range l.Items {
			name := im.Name
			consider(cloud.Resource{Kind: "image", ID: name, Tags: tagsOf(im.Labels), State: im.Status}, func() error {
				return b.deleteImage(ctx, c, name)
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gcp: listing images: %w", err)
	}
	if b.cfg.Bucket != "" {
		err = c.storage.Objects.List(b.cfg.Bucket).Prefix(ObjectPrefix).Pages(ctx, func(l *storage.Objects) error {
			for _, ob := range l.Items {
				// An object is needed only while its image is made:
				// old ones are due (an hour is ample).
				t := map[string]string{cloud.TagRun: labelValue(ob.Metadata["kitrun-run"])}
				if created, err := time.Parse(time.RFC3339, ob.TimeCreated); err == nil {
					t[cloud.TagCreated] = created.UTC().Format(time.RFC3339)
					t[cloud.TagExpires] = created.Add(time.Hour).UTC().Format(time.RFC3339)
				}
				name := ob.Name
				consider(cloud.Resource{Kind: "object", ID: "gs://" + b.cfg.Bucket + "/" + name, Tags: t}, func() error {
					err := c.storage.Objects.Delete(b.cfg.Bucket, name).Context(ctx).Do()
					if notFound(err) {
						return nil
					}
					return err
				})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("gcp: listing gs://%s/%s: %w", b.cfg.Bucket, ObjectPrefix, err)
		}
	}
	return rep, nil
}
