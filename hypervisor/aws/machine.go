package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Format is the disk format the backend boots.
const Format = "aws"

var _ hypervisor.DiskBooter = (*Backend)(nil)

// DefaultFormat implements hypervisor.DiskBooter: commands boot the aws
// format when none is asked for.
func (b *Backend) DefaultFormat() string { return Format }

// maxUserData is EC2's limit on an instance's user data (decoded).
const maxUserData = 16 << 10

// launchMu makes this process's count of running instances and its launch
// one step, so that parallel starts respect max-instances.
var launchMu sync.Mutex

// InstanceTypeError says that the region does not offer the instance type.
type InstanceTypeError struct {
	Type, Region string
}

func (e *InstanceTypeError) Error() string {
	return fmt.Sprintf("aws: instance type %s is not offered in region %s; choose another with --backend-opt instance-type=TYPE (see `aws ec2 describe-instance-type-offerings --region %s`)", e.Type, e.Region, e.Region)
}

// QuotaError is the cost guard refusing a launch.
type QuotaError struct {
	Running, Max int
	Region       string
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("aws: %d kitrun instances already run in %s and max-instances is %d: wait for them, stop them, or raise --backend-opt max-instances=N", e.Running, e.Region, e.Max)
}

// Start implements hypervisor.Backend: it checks the spec, makes (or
// finds) the image's AMI, launches the instance and returns once EC2 says
// it runs. Info().Started is the moment of the RunInstances call: every
// stage is timed from it.
func (b *Backend) Start(ctx context.Context, spec hypervisor.Spec) (hypervisor.Machine, error) {
	boot, err := cloud.CheckSpec(b, spec, cloud.DiskRules{Format: Format, Carrier: "an AMI",
		FormatHint: "EC2 boots AMIs: build and boot the aws format (--format aws, or --image-format aws for bench)",
		SeedSource: initproto.SeedAWS, SeedLimit: maxUserData})
	if err != nil {
		return nil, err
	}
	img, machineName, manifestPath := spec.Image, boot.Machine, boot.Path
	manifest, err := awsimport.Read(manifestPath)
	if err != nil {
		return nil, fmt.Errorf("aws: %w", err)
	}
	if err := cloud.CheckPublish(Name, "an instance's", spec.Publish); err != nil {
		return nil, err
	}
	if len(spec.Publish) > 0 && b.cfg.SecurityGroup == "" && b.cfg.IngressCIDR == "" {
		return nil, errors.New("aws: publishing ports opens them in a security group: say to whom with --backend-opt ingress-cidr=ADDR/BITS (your address, e.g. 203.0.113.7/32), or give security-group=sg-…")
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	it := b.instanceType(img.Arch)
	if err := b.checkInstanceType(ctx, c, it); err != nil {
		return nil, err
	}
	if n, err := b.countInstances(ctx, c); err != nil {
		return nil, err
	} else if n >= b.cfg.MaxInstances {
		return nil, &QuotaError{Running: n, Max: b.cfg.MaxInstances, Region: c.region}
	}
	store := &imageStore{b: b, c: c, manifest: manifest, dir: img.Dir, name: img.Manifest.Name}
	ami, reused, err := cloud.EnsureImage(ctx, store, manifest.Disk.SHA256)
	if err != nil {
		return nil, err
	}
	info := hypervisor.Info{Backend: Name, Arch: img.Arch.Name, Machine: machineName, Format: Format,
		Accel: "ec2 " + it, AccelReason: "the instance type", Version: "ec2 " + c.region + " " + it}
	if reused {
		info.AccelReason += "; AMI " + ami + " reused"
	} else {
		info.AccelReason += "; AMI " + ami + " uploaded"
	}
	m := &machine{Machine: cloud.NewMachine(Name, "instance", info), b: b, c: c, ami: ami}
	imageUsers.Use(ami, +1)
	if err := m.launch(ctx, spec, ami, it, img.Manifest.Name); err != nil {
		if m.ID() == "" { // no instance: end() will not release it
			imageUsers.Use(ami, -1)
		}
		return nil, err
	}
	return m, nil
}

// imageUsers counts this process's machines per AMI.
var imageUsers cloud.ImageUsers

// deleteImage deregisters an AMI and deletes its snapshots (keep-image=false).
func (m *machine) deleteImage(ctx context.Context) (left []string, err error) {
	out, err := m.c.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{m.ami}})
	if err != nil {
		return []string{"image " + m.ami}, fmt.Errorf("looking up image %s: %w", m.ami, err)
	}
	var snaps []string
	for _, im := range out.Images {
		for _, bd := range im.BlockDeviceMappings {
			if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
				snaps = append(snaps, *bd.Ebs.SnapshotId)
			}
		}
	}
	if _, err := m.c.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(m.ami)}); err != nil {
		left = append(left, "image "+m.ami)
		for _, s := range snaps {
			left = append(left, "snapshot "+s)
		}
		return left, fmt.Errorf("deregistering image %s: %w", m.ami, err)
	}
	var errs []error
	for _, s := range snaps {
		if _, err := m.c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)}); err != nil {
			left = append(left, "snapshot "+s)
			errs = append(errs, fmt.Errorf("deleting snapshot %s: %w", s, err))
		}
	}
	return left, errors.Join(errs...)
}

// checkInstanceType fails clearly when the region lacks the type.
func (b *Backend) checkInstanceType(ctx context.Context, c *clients, it string) error {
	out, err := c.ec2.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeRegion,
		Filters:      []types.Filter{{Name: aws.String("instance-type"), Values: []string{it}}},
	})
	if err != nil {
		return fmt.Errorf("aws: checking instance type %s in %s: %w", it, c.region, err)
	}
	if len(out.InstanceTypeOfferings) == 0 {
		return &InstanceTypeError{Type: it, Region: c.region}
	}
	return nil
}

// liveStates are the states of an instance that costs (or will).
var liveStates = []string{"pending", "running", "stopping"}

func (b *Backend) countInstances(ctx context.Context, c *clients) (int, error) {
	n := 0
	p := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{cloud.TagRun}},
		{Name: aws.String("instance-state-name"), Values: liveStates},
	}})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("aws: counting kitrun's instances: %w", err)
		}
		for _, r := range out.Reservations {
			n += len(r.Instances)
		}
	}
	return n, nil
}

// machine is one instance.
type machine struct {
	*cloud.Machine
	b     *Backend
	c     *clients
	ami   string
	group string // the security group made for this machine

	mu    sync.Mutex
	state string
}

// launch creates the security group (if ports are published), runs the
// instance and waits for it to run.
func (m *machine) launch(ctx context.Context, spec hypervisor.Spec, ami, it, name string) (err error) {
	b, c := m.b, m.c
	tags := cloud.Tags(time.Now(), b.cfg.Lifetime, map[string]string{cloud.TagName: "kitrun " + name})
	in := &ec2.RunInstancesInput{
		ImageId: aws.String(ami), InstanceType: types.InstanceType(it),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		// A guest that powers off deletes its instance: nothing is left
		// running, or stopped, after a kitrun crash.
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		MetadataOptions:                   &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired},
		// Retries of a throttled call launch one instance, not two.
		ClientToken: aws.String(fmt.Sprintf("kitrun-%s-%d", cloud.RunID(), time.Now().UnixNano())),
		TagSpecifications: []types.TagSpecification{
			tagSpec(types.ResourceTypeInstance, tags), tagSpec(types.ResourceTypeVolume, tags),
		},
	}
	if len(spec.Seed) > 0 {
		// The seed is the user data: kitinit reads it over IMDSv2
		// (see boot/kitinit/metaseed.go).
		in.UserData = aws.String(base64.StdEncoding.EncodeToString(spec.Seed))
	}
	if b.cfg.Subnet != "" {
		in.SubnetId = aws.String(b.cfg.Subnet)
	}
	if b.cfg.SecurityGroup != "" {
		in.SecurityGroupIds = []string{b.cfg.SecurityGroup}
	} else if len(spec.Publish) > 0 {
		if m.group, err = m.createGroup(ctx, spec.Publish, tags); err != nil {
			return err
		}
		in.SecurityGroupIds = []string{m.group}
		defer func() {
			if err != nil {
				if derr := m.deleteGroup(time.Minute); derr != nil {
					err = errors.Join(err, derr)
				}
			}
		}()
	}
	for _, p := range spec.Publish {
		m.Publish(p.GuestPort)
	}
	launchMu.Lock()
	n, err := b.countInstances(ctx, c)
	if err == nil && n >= b.cfg.MaxInstances {
		err = &QuotaError{Running: n, Max: b.cfg.MaxInstances, Region: c.region}
	}
	if err != nil {
		launchMu.Unlock()
		return err
	}
	m.MarkStarted()
	out, err := c.ec2.RunInstances(ctx, in)
	launchMu.Unlock()
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "Unsupported" || ae.ErrorCode() == "InsufficientInstanceCapacity" || ae.ErrorCode() == "InstanceLimitExceeded" || ae.ErrorCode() == "VcpuLimitExceeded") {
			hint := "try another instance type, subnet (zone) or region"
			if strings.HasSuffix(ae.ErrorCode(), "LimitExceeded") {
				hint = "the account's quota is reached: stop other instances, try another instance type, or ask AWS for a higher quota"
			}
			return fmt.Errorf("aws: EC2 cannot launch a %s in %s now (%s): %s; %s", it, c.region, ae.ErrorCode(), ae.ErrorMessage(), hint)
		}
		return fmt.Errorf("aws: RunInstances: %w", err)
	}
	if len(out.Instances) != 1 {
		return fmt.Errorf("aws: RunInstances started %d instances", len(out.Instances))
	}
	m.Accepted(aws.ToString(out.Instances[0].InstanceId))
	m.Follow(cloud.PollConsole(m.snapshot, cloud.PollOptions{Interval: b.cfg.Poll}))
	go m.watch()
	// Start returns once the instance runs.
	return m.WaitRunning(ctx, 10*time.Minute, func() error { return m.Abandon(m.ForceOff) })
}

func (m *machine) createGroup(ctx context.Context, publish []hypervisor.PortForward, tags map[string]string) (string, error) {
	c := m.c
	out, err := c.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String("kitrun-" + cloud.RunID() + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)),
		Description:       aws.String("kitrun: published ports of one machine"),
		TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeSecurityGroup, tags)},
	})
	if err != nil {
		return "", fmt.Errorf("aws: creating a security group for the published ports: %w", err)
	}
	id := aws.ToString(out.GroupId)
	var perms []types.IpPermission
	for _, p := range publish {
		perms = append(perms, types.IpPermission{IpProtocol: aws.String("tcp"),
			FromPort: aws.Int32(int32(p.GuestPort)), ToPort: aws.Int32(int32(p.GuestPort)),
			IpRanges: []types.IpRange{{CidrIp: aws.String(m.b.cfg.IngressCIDR), Description: aws.String("kitrun published port")}}})
	}
	if _, err := c.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: perms}); err != nil {
		m.group = id
		derr := m.deleteGroup(time.Minute)
		m.group = ""
		return "", errors.Join(fmt.Errorf("aws: opening the published ports in %s: %w", id, err), derr)
	}
	return id, nil
}

// deleteGroup deletes the machine's security group, retrying while EC2
// still counts it in use (an instance's interface lingers after
// termination).
func (m *machine) deleteGroup(within time.Duration) error {
	if m.group == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, err := m.c.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(m.group)})
		var ae smithy.APIError
		if err == nil || (errors.As(err, &ae) && ae.ErrorCode() == "InvalidGroup.NotFound") {
			return nil
		}
		if !(errors.As(err, &ae) && ae.ErrorCode() == "DependencyViolation") {
			return fmt.Errorf("deleting security group %s: %w", m.group, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deleting security group %s: still in use after %s: %w", m.group, within, err)
		case <-time.After(m.b.cfg.Poll):
		}
	}
}

// snapshot is the console's latest output (GetConsoleOutput, Latest: the
// last 64 KiB on Nitro), decoded.
func (m *machine) snapshot(ctx context.Context) ([]byte, error) {
	out, err := m.c.ec2.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(m.ID()), Latest: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	if out.Output == nil {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(*out.Output)
}

// describe returns the instance, or nil when EC2 does not know it.
func describe(ctx context.Context, c *clients, id string) (*types.Instance, error) {
	out, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "InvalidInstanceID.NotFound" || ae.ErrorCode() == "InvalidInstanceID.Malformed") {
			return nil, nil
		}
		return nil, err
	}
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == id {
				return &r.Instances[i], nil
			}
		}
	}
	return nil, nil
}

// watch follows the instance's state until it is gone, enforces its
// lifetime, then tears down what was made for it.
func (m *machine) watch() {
	id := m.ID()
	lifetime := time.NewTimer(m.b.cfg.Lifetime)
	defer lifetime.Stop()
	var reason string
	notFoundSince := time.Time{}
	runningSeen := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		inst, err := describe(ctx, m.c, id)
		cancel()
		if err == nil && inst == nil {
			// EC2 is eventually consistent: a new instance may be
			// unknown for a moment.
			if notFoundSince.IsZero() {
				notFoundSince = time.Now()
			} else if time.Since(notFoundSince) > time.Minute {
				reason = "the instance disappeared"
				break
			}
		}
		if inst != nil {
			st := string(inst.State.Name)
			m.mu.Lock()
			m.state = st
			m.mu.Unlock()
			if !runningSeen && (st == "running" || st == "stopping" || st == "shutting-down" || st == "stopped" || st == "terminated") {
				runningSeen = true
				addr := aws.ToString(inst.PublicIpAddress)
				if m.b.cfg.Address == "private" || addr == "" {
					addr = aws.ToString(inst.PrivateIpAddress)
				}
				m.SetAddr(addr)
				m.Running()
			}
			if st == "terminated" || st == "stopped" {
				if inst.StateReason != nil {
					reason = aws.ToString(inst.StateReason.Code)
				}
				if reason == "" {
					reason = st
				}
				break
			}
		}
		select {
		case <-time.After(m.b.cfg.Poll):
		case <-lifetime.C:
			m.Force(fmt.Sprintf("its lifetime (%s) passed", m.b.cfg.Lifetime), false)
			m.terminate(context.Background())
		}
	}
	m.end(reason)
}

// terminate asks EC2 to terminate the instance.
func (m *machine) terminate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := m.c.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{m.ID()}})
	var ae smithy.APIError
	if err != nil && errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceID.NotFound" {
		return nil
	}
	return err
}

// end reads the last of the console, deletes what is left of the
// machine, and reports how it ended.
func (m *machine) end(reason string) {
	m.mu.Lock()
	state := m.state
	m.mu.Unlock()
	var ended error
	switch forced := m.Forced(); {
	case forced != "":
		ended = fmt.Errorf("instance %s terminated by the host: %s", m.ID(), forced)
	case strings.Contains(reason, "InstanceInitiatedShutdown"):
		// The guest powered off.
	case m.Pressed() && state == "stopped":
		// Stopped by the power button: the guest shut down.
	default:
		ended = fmt.Errorf("instance %s ended: %s", m.ID(), reason)
	}
	m.End(reason, ended, func(t *cloud.Teardown) {
		if state != "terminated" {
			// A stopped instance still holds its volume: delete it.
			if err := m.terminate(context.Background()); err != nil {
				t.Add(fmt.Errorf("terminating %s: %w", m.ID(), err), "instance "+m.ID())
			}
		}
		if m.group != "" {
			t.Add(m.deleteGroup(5*time.Minute), "security group "+m.group)
		}
		if imageUsers.Use(m.ami, -1) == 0 && !m.b.cfg.KeepImage {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			l, err := m.deleteImage(ctx)
			cancel()
			t.Add(err, l...)
		}
	})
}

// PowerButton implements hypervisor.Machine: StopInstances without force
// is EC2's ACPI power button. A guest that shuts down is then stopped, and
// the backend terminates it.
func (m *machine) PowerButton(ctx context.Context) error {
	if err := m.Press(); err != nil {
		return err
	}
	_, err := m.c.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{m.ID()}})
	var ae smithy.APIError
	if err != nil && errors.As(err, &ae) && ae.ErrorCode() == "IncorrectInstanceState" {
		return nil // already stopping or shutting down
	}
	if err != nil {
		return fmt.Errorf("aws: StopInstances %s: %w", m.ID(), err)
	}
	return nil
}

// ForceOff implements hypervisor.Machine: TerminateInstances, then wait
// until the instance is gone and its leftovers deleted.
func (m *machine) ForceOff(ctx context.Context) error {
	return m.ForceOffWith(ctx, "TerminateInstances", m.terminate)
}

// Destroy implements hypervisor.Backend: it terminates the instance. Its
// security group, if any, is deleted by the process that started it (or by
// sweep).
func (b *Backend) Destroy(ctx context.Context, id string) error {
	if !strings.HasPrefix(id, "i-") {
		return nil // not an instance: nothing of ours runs under it
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	_, err = c.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	var ae smithy.APIError
	if err != nil && errors.As(err, &ae) && (ae.ErrorCode() == "InvalidInstanceID.NotFound" || ae.ErrorCode() == "InvalidInstanceID.Malformed") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("aws: TerminateInstances %s: %w", id, err)
	}
	return nil
}

// Alive implements hypervisor.Backend: pending, running or stopping.
func (b *Backend) Alive(ctx context.Context, id string) (bool, error) {
	if !strings.HasPrefix(id, "i-") {
		return false, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return false, err
	}
	inst, err := describe(ctx, c, id)
	if err != nil {
		return false, fmt.Errorf("aws: DescribeInstances %s: %w", id, err)
	}
	if inst == nil {
		return false, nil
	}
	switch inst.State.Name {
	case "pending", "running", "stopping":
		return true, nil
	}
	return false, nil
}
