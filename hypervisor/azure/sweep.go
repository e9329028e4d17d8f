package azure

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kitrun/kitrun/hypervisor/cloud"
)

func tagMap(t map[string]*string) map[string]string {
	m := map[string]string{}
	for k, v := range t {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// Sweep implements cloud.Sweeper: every resource tagged kitrun:run in the
// resource group that is due (cloud.SweepOptions.Due) is deleted: VMs
// first (with the NIC, security group, public IP and OS disk named after
// them), then the same kinds left on their own, then image disks.
func (b *Backend) Sweep(ctx context.Context, o cloud.SweepOptions) (*cloud.SweepReport, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	rg := b.cfg.ResourceGroup
	rep := &cloud.SweepReport{}
	do := func(r cloud.Resource, del func() error) {
		if due, _ := o.Due(r); !due {
			rep.Kept = append(rep.Kept, r)
			return
		}
		if !o.DryRun {
			if err := del(); err != nil && !notFound(err) {
				rep.Failed = append(rep.Failed, cloud.SweepFailure{Resource: r, Err: err})
				return
			}
		}
		rep.Removed = append(rep.Removed, r)
	}
	vp := c.vms.NewListPager(rg, nil)
	for vp.More() {
		page, err := vp.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("azure: listing VMs: %w", err)
		}
		for _, v := range page.Value {
			if v.Tags[cloud.TagRun] == nil || v.Name == nil {
				continue
			}
			name := *v.Name
			do(cloud.Resource{Kind: "vm", ID: name, Tags: tagMap(v.Tags)}, func() error {
				if left, err := b.deleteMachine(ctx, c, name); err != nil {
					return fmt.Errorf("left %s: %w", strings.Join(left, ", "), err)
				}
				return nil
			})
		}
	}
	np := c.nics.NewListPager(rg, nil)
	for np.More() {
		page, err := np.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("azure: listing NICs: %w", err)
		}
		for _, v := range page.Value {
			if v.Tags[cloud.TagRun] != nil && v.Name != nil {
				name := *v.Name
				do(cloud.Resource{Kind: "nic", ID: name, Tags: tagMap(v.Tags)}, func() error { return wait(c.nics.BeginDelete(ctx, rg, name, nil)) })
			}
		}
	}
	sp := c.nsgs.NewListPager(rg, nil)
	for sp.More() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("azure: listing network security groups: %w", err)
		}
		for _, v := range page.Value {
			if v.Tags[cloud.TagRun] != nil && v.Name != nil {
				name := *v.Name
				do(cloud.Resource{Kind: "network-security-group", ID: name, Tags: tagMap(v.Tags)}, func() error { return wait(c.nsgs.BeginDelete(ctx, rg, name, nil)) })
			}
		}
	}
	ip := c.ips.NewListPager(rg, nil)
	for ip.More() {
		page, err := ip.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("azure: listing public IPs: %w", err)
		}
		for _, v := range page.Value {
			if v.Tags[cloud.TagRun] != nil && v.Name != nil {
				name := *v.Name
				do(cloud.Resource{Kind: "public-ip", ID: name, Tags: tagMap(v.Tags)}, func() error { return wait(c.ips.BeginDelete(ctx, rg, name, nil)) })
			}
		}
	}
	dp := c.disks.NewListByResourceGroupPager(rg, nil)
	for dp.More() {
		page, err := dp.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("azure: listing disks: %w", err)
		}
		for _, v := range page.Value {
			if v.Tags[cloud.TagRun] != nil && v.Name != nil {
				name := *v.Name
				kind := "disk"
				if strings.HasPrefix(name, ImageDiskPrefix) {
					kind = "image-disk"
				}
				do(cloud.Resource{Kind: kind, ID: name, Tags: tagMap(v.Tags)}, func() error { return wait(c.disks.BeginDelete(ctx, rg, name, nil)) })
			}
		}
	}
	return rep, nil
}
