package azure

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

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
	if b.cfg.BlobEndpoint != "" {
		if err := b.sweepBlobs(ctx, c, do); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// UploadTTL is how long an upload blob may live: it is deleted when its
// import ends, so one older than this was left by a killed kitrun.
const UploadTTL = 2 * time.Hour

// sweepBlobs offers the upload blobs under BlobPrefix to do: a blob's
// name holds its run, it is created at its last modification and expires
// UploadTTL later. The listing is List Blobs over the SDK's pipeline, not
// azblob's container client, which links Apache Arrow (+10 MB of binary)
// for a listing format kitrun does not use.
func (b *Backend) sweepBlobs(ctx context.Context, c *clients, do func(cloud.Resource, func() error)) error {
	base := strings.TrimSuffix(b.cfg.BlobEndpoint, "/") + "/" + b.cfg.Container
	pl := runtime.NewPipeline("kitrun", "azure", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(c.cred, []string{"https://storage.azure.com/.default"},
			&policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: c.blobO.InsecureAllowCredentialWithHTTP})},
	}, &c.blobO)
	marker := ""
	for {
		u := base + "?restype=container&comp=list&prefix=" + url.QueryEscape(BlobPrefix)
		if marker != "" {
			u += "&marker=" + url.QueryEscape(marker)
		}
		req, err := runtime.NewRequest(ctx, http.MethodGet, u)
		if err != nil {
			return fmt.Errorf("azure: %w", err)
		}
		req.Raw().Header.Set("x-ms-version", "2023-11-03")
		resp, err := pl.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = runtime.NewResponseError(resp)
		}
		if err != nil {
			return fmt.Errorf("azure: listing %s/%s: %w", base, BlobPrefix, err)
		}
		var list struct {
			Blobs []struct {
				Name         string `xml:"Name"`
				LastModified string `xml:"Properties>Last-Modified"`
			} `xml:"Blobs>Blob"`
			NextMarker string `xml:"NextMarker"`
		}
		err = xml.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("azure: listing %s/%s: %w", base, BlobPrefix, err)
		}
		for _, bl := range list.Blobs {
			name := bl.Name
			run := strings.TrimSuffix(name[strings.LastIndexByte(name, '/')+1:], ".vhd")
			if i := strings.IndexByte(run, '-'); i >= 0 {
				run = run[i+1:]
			}
			tags := map[string]string{cloud.TagRun: run}
			if mod, err := time.Parse(http.TimeFormat, bl.LastModified); err == nil {
				tags[cloud.TagCreated] = mod.UTC().Format(time.RFC3339)
				tags[cloud.TagExpires] = mod.Add(UploadTTL).UTC().Format(time.RFC3339)
			}
			do(cloud.Resource{Kind: "blob", ID: name, Tags: tags}, func() error {
				pb, err := pageblob.NewClient(base+"/"+name, c.cred, &pageblob.ClientOptions{ClientOptions: c.blobO})
				if err == nil {
					_, err = pb.Delete(ctx, nil)
				}
				return err
			})
		}
		if list.NextMarker == "" {
			return nil
		}
		marker = list.NextMarker
	}
}
