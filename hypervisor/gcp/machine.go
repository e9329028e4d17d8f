package gcp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Format is the disk format the backend boots.
const Format = "gcp"

var _ hypervisor.DiskBooter = (*Backend)(nil)

// DefaultFormat implements hypervisor.DiskBooter.
func (b *Backend) DefaultFormat() string { return Format }

// launchMu makes this process's count of instances and its launch one
// step, so that parallel starts respect max-instances.
var launchMu sync.Mutex

// QuotaError is the cost guard refusing a launch.
type QuotaError struct {
	Running, Max int
	Zone         string
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("gcp: %d kitrun instances already run in %s and max-instances is %d: wait for them, stop them, or raise --backend-opt max-instances=N", e.Running, e.Zone, e.Max)
}

// CapacityError is Compute Engine refusing an instance for want of
// capacity in the zone or of quota in the project.
type CapacityError struct {
	MachineType, Zone, Code, Message string
}

func (e *CapacityError) Error() string {
	hint := "try another zone (--backend-opt zone=ZONE) or machine type (machine-type=TYPE), or later"
	if strings.Contains(e.Code, "QUOTA") {
		hint = "the project's quota is reached: stop other instances, try another machine type or region, or ask for a higher quota (IAM & Admin › Quotas)"
	}
	return fmt.Sprintf("gcp: Compute Engine cannot start a %s in %s now (%s): %s; %s", e.MachineType, e.Zone, e.Code, e.Message, hint)
}

var capacityCodes = []string{"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"}

// Start implements hypervisor.Backend.
func (b *Backend) Start(ctx context.Context, spec hypervisor.Spec) (hypervisor.Machine, error) {
	// The seed travels base64-encoded (metadata values are text), and
	// kitinit takes initproto.MaxSeed bytes of it.
	boot, err := cloud.CheckSpec(b, spec, cloud.DiskRules{Format: Format, Carrier: "an image",
		FormatHint: "Compute Engine boots images: build and boot the gcp format (--format gcp, or --image-format gcp for bench)",
		SeedSource: initproto.SeedGCE, SeedLimit: initproto.MaxSeed / 4 * 3})
	if err != nil {
		return nil, err
	}
	img, machineName, path, d := spec.Image, boot.Machine, boot.Path, boot.Disk
	if d.SHA256 == "" {
		return nil, fmt.Errorf("gcp: the image's manifest has no digest of its gcp disk: rebuild it")
	}
	if err := cloud.CheckPublish(Name, "an instance's", spec.Publish); err != nil {
		return nil, err
	}
	if len(spec.Publish) > 0 && b.cfg.IngressCIDR == "" {
		return nil, errors.New("gcp: publishing ports opens them in a firewall rule: say to whom with --backend-opt ingress-cidr=ADDR/BITS (your address, e.g. 203.0.113.7/32)")
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	mt := b.machineType(img.Arch)
	if n, err := b.countInstances(ctx, c); err != nil {
		return nil, err
	} else if n >= b.cfg.MaxInstances {
		return nil, &QuotaError{Running: n, Max: b.cfg.MaxInstances, Zone: b.cfg.Zone}
	}
	store := &imageStore{b: b, c: c, path: path, size: d.Size, name: img.Manifest.Name}
	imgName, reused, err := cloud.EnsureImage(ctx, store, d.SHA256)
	if err != nil {
		return nil, err
	}
	info := hypervisor.Info{Backend: Name, Arch: img.Arch.Name, Machine: machineName, Format: Format,
		Accel: "gce " + mt, AccelReason: "the machine type", Version: "gce " + b.cfg.Zone + " " + mt}
	if reused {
		info.AccelReason += "; image " + imgName + " reused"
	} else {
		info.AccelReason += "; image " + imgName + " uploaded"
	}
	m := &machine{Machine: cloud.NewMachine(Name, "instance", info), b: b, c: c, image: imgName}
	imageUsers.Use(imgName, +1)
	if err := m.launch(ctx, spec, mt, img.Manifest.Name); err != nil {
		if m.ID() == "" {
			imageUsers.Use(imgName, -1)
		}
		return nil, err
	}
	return m, nil
}

// imageUsers counts this process's machines per image.
var imageUsers cloud.ImageUsers

// liveStatuses are the statuses of an instance that costs (or will).
var liveStatuses = map[string]bool{"PROVISIONING": true, "STAGING": true, "RUNNING": true, "STOPPING": true, "REPAIRING": true}

func (b *Backend) countInstances(ctx context.Context, c *clients) (int, error) {
	n := 0
	err := c.compute.Instances.List(c.project, b.cfg.Zone).Filter("labels."+LabelRun+":*").Pages(ctx, func(l *compute.InstanceList) error {
		for _, in := range l.Items {
			if liveStatuses[in.Status] {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("gcp: counting kitrun's instances: %w", err)
	}
	return n, nil
}

// machine is one instance.
type machine struct {
	*cloud.Machine
	b        *Backend
	c        *clients
	image    string
	name     string
	next     int64  // the console's offset
	firewall string // the firewall rule made for this machine

	mu     sync.Mutex
	status string
}

// launch creates the firewall rule (if ports are published), inserts the
// instance and waits for it to run.
func (m *machine) launch(ctx context.Context, spec hypervisor.Spec, mt, name string) (err error) {
	b, c := m.b, m.c
	now := time.Now()
	tags := cloud.Tags(now, b.cfg.Lifetime, map[string]string{cloud.TagName: "kitrun " + name})
	// Instance names: lowercase, start with a letter, at most 63.
	m.name = resourceName(fmt.Sprintf("kitrun-%s-%s", strconv.FormatInt(now.UnixNano()%1e12, 36), runLabel()))
	network := "global/networks/" + b.cfg.Network
	inst := &compute.Instance{
		Name:        m.name,
		MachineType: fmt.Sprintf("zones/%s/machineTypes/%s", b.cfg.Zone, mt),
		Labels:      labels(tags),
		Disks: []*compute.AttachedDisk{{
			Boot: true, AutoDelete: true, Type: "PERSISTENT",
			InitializeParams: &compute.AttachedDiskInitializeParams{SourceImage: "global/images/" + m.image, Labels: labels(tags)},
		}},
		NetworkInterfaces: []*compute.NetworkInterface{{
			Network:       network,
			AccessConfigs: []*compute.AccessConfig{{Type: "ONE_TO_ONE_NAT", Name: "External NAT"}},
		}},
		// The cost guard: Compute Engine deletes the instance when its
		// lifetime ends, whether kitrun still runs or not.
		Scheduling: &compute.Scheduling{
			MaxRunDuration:            &compute.Duration{Seconds: int64(b.cfg.Lifetime / time.Second)},
			InstanceTerminationAction: "DELETE",
		},
	}
	if b.cfg.GVNIC {
		inst.NetworkInterfaces[0].NicType = "GVNIC"
	}
	if len(spec.Seed) > 0 {
		// kitinit reads it from the metadata server (see
		// boot/kitinit/metaseed.go).
		v := base64.StdEncoding.EncodeToString(spec.Seed)
		inst.Metadata = &compute.Metadata{Items: []*compute.MetadataItems{{Key: initproto.SeedGCEKey, Value: &v}}}
	}
	if len(spec.Publish) > 0 {
		if err := m.createFirewall(ctx, spec.Publish, network, tags); err != nil {
			return err
		}
		inst.Tags = &compute.Tags{Items: []string{m.firewall}}
		defer func() {
			if err != nil {
				if derr := m.deleteFirewall(time.Minute); derr != nil {
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
		err = &QuotaError{Running: n, Max: b.cfg.MaxInstances, Zone: b.cfg.Zone}
	}
	if err != nil {
		launchMu.Unlock()
		return err
	}
	m.MarkStarted()
	// A request ID makes a retried insert the same insert.
	reqID := newRequestID()
	op, err := retry(ctx, b, func() (*compute.Operation, error) {
		return c.compute.Instances.Insert(c.project, b.cfg.Zone, inst).RequestId(reqID).Context(ctx).Do()
	})
	launchMu.Unlock()
	if err != nil {
		return m.insertError(mt, err)
	}
	m.Accepted(m.name)
	if err := b.wait(ctx, c, op, b.cfg.Zone, 10*time.Minute); err != nil {
		ierr := m.insertError(mt, err)
		// The insert failed: there may be no instance; delete whatever is.
		return errors.Join(ierr, m.abandon())
	}
	m.Follow(cloud.PollStream(m.readConsole, cloud.PollOptions{Interval: b.cfg.Poll}))
	go m.watch()
	return m.WaitRunning(ctx, 10*time.Minute, m.abandon)
}

func (m *machine) insertError(mt string, err error) error {
	var oe *OpError
	if errors.As(err, &oe) {
		for _, code := range capacityCodes {
			if oe.Has(code) {
				return &CapacityError{MachineType: mt, Zone: m.b.cfg.Zone, Code: code, Message: strings.Join(oe.Msgs, "; ")}
			}
		}
	}
	if apiCode(err) == 403 && strings.Contains(err.Error(), "QUOTA_EXCEEDED") {
		return &CapacityError{MachineType: mt, Zone: m.b.cfg.Zone, Code: "QUOTA_EXCEEDED", Message: err.Error()}
	}
	return fmt.Errorf("gcp: instances.insert: %w", err)
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// abandon ends an instance that Start will not return.
func (m *machine) abandon() error {
	if !m.Following() {
		// Nothing follows the instance yet: delete it and clean up here.
		m.Follow(cloud.PollStream(m.readConsole, cloud.PollOptions{Interval: m.b.cfg.Poll}))
		go m.watch()
	}
	return m.Abandon(m.ForceOff)
}

// firewallDescription carries a rule's tags: firewall rules take no labels.
func firewallDescription(tags map[string]string) string {
	l := labels(tags)
	return fmt.Sprintf("kitrun: published ports of one machine; %s=%s %s=%s %s=%s", LabelRun, l[LabelRun], LabelCreated, l[LabelCreated], LabelExpires, l[LabelExpires])
}

// firewallLabels reads the tags back from a rule's description.
func firewallLabels(desc string) map[string]string {
	l := map[string]string{}
	if !strings.HasPrefix(desc, "kitrun:") {
		return l
	}
	if i := strings.Index(desc, ";"); i >= 0 {
		for _, f := range strings.Fields(desc[i+1:]) {
			if k, v, ok := strings.Cut(f, "="); ok {
				l[k] = v
			}
		}
	}
	return l
}

func (m *machine) createFirewall(ctx context.Context, publish []hypervisor.PortForward, network string, tags map[string]string) error {
	b, c := m.b, m.c
	var ports []string
	for _, p := range publish {
		ports = append(ports, strconv.Itoa(p.GuestPort))
	}
	name := m.name
	fw := &compute.Firewall{
		Name: name, Description: firewallDescription(tags), Network: network, Direction: "INGRESS",
		Allowed:      []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: ports}},
		SourceRanges: []string{b.cfg.IngressCIDR},
		TargetTags:   []string{name},
	}
	op, err := retry(ctx, b, func() (*compute.Operation, error) {
		return c.compute.Firewalls.Insert(c.project, fw).Context(ctx).Do()
	})
	if err == nil {
		m.firewall = name
		err = b.wait(ctx, c, op, "", 5*time.Minute)
	}
	if err != nil {
		derr := m.deleteFirewall(time.Minute)
		m.firewall = ""
		return errors.Join(fmt.Errorf("gcp: creating firewall rule %s for the published ports: %w", name, err), derr)
	}
	return nil
}

func (m *machine) deleteFirewall(within time.Duration) error {
	if m.firewall == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	op, err := retry(ctx, m.b, func() (*compute.Operation, error) {
		return m.c.compute.Firewalls.Delete(m.c.project, m.firewall).Context(ctx).Do()
	})
	if notFound(err) {
		return nil
	}
	if err == nil {
		err = m.b.wait(ctx, m.c, op, "", within)
	}
	if err != nil {
		return fmt.Errorf("deleting firewall rule %s: %w", m.firewall, err)
	}
	return nil
}

// readConsole reads serial port 1 from the last offset: getSerialPortOutput
// returns what follows start and the next offset. When start is older than
// the platform's buffer (1 MiB), it returns from the oldest byte it holds
// (its start past ours): the bytes between were lost.
func (m *machine) readConsole(ctx context.Context) ([]byte, bool, error) {
	out, err := m.c.compute.Instances.GetSerialPortOutput(m.c.project, m.b.cfg.Zone, m.name).Port(1).Start(m.next).Context(ctx).Do()
	if notFound(err) {
		// Deleted (or not there yet): its console is gone with it.
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	lost := out.Start > m.next
	if out.Next > m.next {
		m.next = out.Next
	}
	return []byte(out.Contents), lost, nil
}

// get returns the instance, or nil when Compute Engine does not know it.
func (m *machine) get(ctx context.Context) (*compute.Instance, error) {
	in, err := retry(ctx, m.b, func() (*compute.Instance, error) {
		return m.c.compute.Instances.Get(m.c.project, m.b.cfg.Zone, m.name).Context(ctx).Do()
	})
	if notFound(err) {
		return nil, nil
	}
	return in, err
}

// watch follows the instance until it is stopped or gone, enforces its
// lifetime, then tears down what was made for it.
func (m *machine) watch() {
	lifetime := time.NewTimer(m.b.cfg.Lifetime)
	defer lifetime.Stop()
	var reason string
	runningSeen := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		in, err := m.get(ctx)
		cancel()
		if err == nil && in == nil {
			m.mu.Lock()
			m.status = "DELETED"
			m.mu.Unlock()
			reason = "the instance was deleted"
			break
		}
		if in != nil {
			m.mu.Lock()
			m.status = in.Status
			m.mu.Unlock()
			if !runningSeen && (in.Status == "RUNNING" || in.Status == "STOPPING" || in.Status == "TERMINATED") {
				runningSeen = true
				addr := ""
				if len(in.NetworkInterfaces) > 0 {
					ni := in.NetworkInterfaces[0]
					if m.b.cfg.Address != "internal" && len(ni.AccessConfigs) > 0 {
						addr = ni.AccessConfigs[0].NatIP
					}
					if addr == "" {
						addr = ni.NetworkIP
					}
				}
				m.SetAddr(addr)
				m.Running()
			}
			if in.Status == "TERMINATED" {
				reason = "TERMINATED"
				if in.StatusMessage != "" {
					reason += ": " + in.StatusMessage
				}
				break
			}
		}
		select {
		case <-time.After(m.b.cfg.Poll):
		case <-lifetime.C:
			m.Force(fmt.Sprintf("its lifetime (%s) passed", m.b.cfg.Lifetime), false)
			m.delete(context.Background())
		}
	}
	m.end(reason)
}

// delete asks Compute Engine to delete the instance (and its disk) and
// waits for it.
func (m *machine) delete(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	op, err := retry(ctx, m.b, func() (*compute.Operation, error) {
		return m.c.compute.Instances.Delete(m.c.project, m.b.cfg.Zone, m.name).Context(ctx).Do()
	})
	if notFound(err) {
		return nil
	}
	if err == nil {
		err = m.b.wait(ctx, m.c, op, m.b.cfg.Zone, 5*time.Minute)
	}
	return err
}

// end reads the last of the console, deletes what is left of the
// machine, and reports how it ended.
func (m *machine) end(reason string) {
	m.mu.Lock()
	status := m.status
	m.mu.Unlock()
	var ended error
	switch forced := m.Forced(); {
	case forced != "":
		ended = fmt.Errorf("instance %s deleted by the host: %s", m.name, forced)
	case status == "TERMINATED":
		// Stopped: the guest powered off (by itself, or after the
		// power button).
	default:
		ended = fmt.Errorf("instance %s ended: %s", m.name, reason)
	}
	m.End(reason, ended, func(t *cloud.Teardown) {
		if status != "DELETED" {
			// A stopped instance keeps its disk: delete both.
			if err := m.delete(context.Background()); err != nil {
				t.Add(fmt.Errorf("deleting instance %s: %w", m.name, err), "instance "+m.name)
			}
		}
		if m.firewall != "" {
			t.Add(m.deleteFirewall(5*time.Minute), "firewall rule "+m.firewall)
		}
		if imageUsers.Use(m.image, -1) == 0 && !m.b.cfg.KeepImage {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			err := m.b.deleteImage(ctx, m.c, m.image)
			cancel()
			if err != nil {
				t.Add(fmt.Errorf("deleting image %s: %w", m.image, err), "image "+m.image)
			}
		}
	})
}

// PowerButton implements hypervisor.Machine: instances.stop sends the
// guest an ACPI power-button press (Compute Engine stops the instance by
// force if the guest has not shut down after a while). The stopped
// instance is then deleted.
func (m *machine) PowerButton(ctx context.Context) error {
	if err := m.Press(); err != nil {
		return err
	}
	_, err := retry(ctx, m.b, func() (*compute.Operation, error) {
		return m.c.compute.Instances.Stop(m.c.project, m.b.cfg.Zone, m.name).Context(ctx).Do()
	})
	if err != nil && !notFound(err) {
		return fmt.Errorf("gcp: instances.stop %s: %w", m.name, err)
	}
	return nil
}

// ForceOff implements hypervisor.Machine: instances.delete, then wait
// until the machine is gone and its leftovers deleted.
func (m *machine) ForceOff(ctx context.Context) error {
	return m.ForceOffWith(ctx, "instances.delete", m.delete)
}

// Destroy implements hypervisor.Backend: it deletes the instance. Its
// firewall rule, if any, is deleted by the process that started it (or
// by sweep).
func (b *Backend) Destroy(ctx context.Context, id string) error {
	if !strings.HasPrefix(id, "kitrun-") {
		return nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	m := &machine{b: b, c: c, name: id}
	if err := m.delete(ctx); err != nil {
		return fmt.Errorf("gcp: instances.delete %s: %w", id, err)
	}
	return nil
}

// Alive implements hypervisor.Backend.
func (b *Backend) Alive(ctx context.Context, id string) (bool, error) {
	if !strings.HasPrefix(id, "kitrun-") {
		return false, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return false, err
	}
	in, err := (&machine{b: b, c: c, name: id}).get(ctx)
	if err != nil {
		return false, fmt.Errorf("gcp: instances.get %s: %w", id, err)
	}
	return in != nil && liveStatuses[in.Status], nil
}
