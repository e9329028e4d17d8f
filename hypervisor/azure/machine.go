package azure

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Format is the disk format the backend boots.
const Format = "vhd"

// VMPrefix starts the name of every VM kitrun makes (its machine ID); the
// VM's OS disk, public IP, security group and NIC are named after it.
const VMPrefix = "kitrun-"

var _ hypervisor.DiskBooter = (*Backend)(nil)

// DefaultFormat implements hypervisor.DiskBooter.
func (b *Backend) DefaultFormat() string { return Format }

var launchMu sync.Mutex

// QuotaError is the cost guard refusing a start.
type QuotaError struct {
	Running, Max int
	Where        string
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("azure: %d kitrun VMs already exist in %s and max-instances is %d: wait for them, stop them, or raise --backend-opt max-instances=N", e.Running, e.Where, e.Max)
}

func shortID() string {
	var b [5]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// Start implements hypervisor.Backend: it checks the spec, makes (or
// finds) the image disk, creates the machine's resources and returns once
// the VM runs. Info().Started is the moment of the VM's creation call.
func (b *Backend) Start(ctx context.Context, spec hypervisor.Spec) (hypervisor.Machine, error) {
	// userData travels base64-encoded; kitinit takes initproto.MaxSeed
	// bytes of it (Azure itself takes 64 KiB).
	boot, err := cloud.CheckSpec(b, spec, cloud.DiskRules{Format: Format, Carrier: "a VHD",
		FormatHint: "Azure boots VHDs: build and boot the vhd format (--format vhd, or --image-format vhd for bench)",
		SeedSource: initproto.SeedAzure, SeedLimit: initproto.MaxSeed / 4 * 3})
	if err != nil {
		return nil, err
	}
	img, machineName, path, disk := spec.Image, boot.Machine, boot.Path, boot.Disk
	if err := cloud.CheckPublish(Name, "a VM's", spec.Publish); err != nil {
		return nil, err
	}
	if len(spec.Publish) > 0 && b.cfg.IngressCIDR == "" {
		return nil, errors.New("azure: publishing ports opens them in a network security group: say to whom with --backend-opt ingress-cidr=ADDR/BITS (your address, e.g. 203.0.113.7/32)")
	}
	if b.cfg.Subnet == "" {
		return nil, errors.New("azure: give --backend-opt subnet=/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/virtualNetworks/NET/subnets/NAME (the subnet the VM's NIC joins)")
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.checkSize(ctx, c); err != nil {
		return nil, err
	}
	if n, err := b.countVMs(ctx, c); err != nil {
		return nil, err
	} else if n >= b.cfg.MaxInstances {
		return nil, &QuotaError{Running: n, Max: b.cfg.MaxInstances, Where: b.cfg.ResourceGroup}
	}
	store := &imageStore{b: b, c: c, path: path, name: img.Manifest.Name}
	imgDisk, reused, err := cloud.EnsureImage(ctx, store, disk.SHA256)
	if err != nil {
		return nil, err
	}
	imageUsers.Use(imgDisk, +1)
	name := VMPrefix + shortID()
	info := hypervisor.Info{Backend: Name, Arch: img.Arch.Name, Machine: machineName, Format: Format, ID: name,
		Accel: "azure " + b.cfg.VMSize, AccelReason: "the VM size", Version: "azure " + b.cfg.Location + " " + b.cfg.VMSize}
	if reused {
		info.AccelReason += "; image disk " + imgDisk + " reused"
	} else {
		info.AccelReason += "; image disk " + imgDisk + " uploaded"
	}
	m := &machine{Machine: cloud.NewMachine(Name, "VM", info), b: b, c: c, image: imgDisk, name: name}
	if err := m.launch(ctx, spec, img.Manifest.Name); err != nil {
		if !m.launched {
			imageUsers.Use(imgDisk, -1)
		}
		return nil, err
	}
	return m, nil
}

// imageUsers counts this process's machines per image disk.
var imageUsers cloud.ImageUsers

// countVMs counts kitrun's VMs (of any run) in the resource group.
func (b *Backend) countVMs(ctx context.Context, c *clients) (int, error) {
	n := 0
	p := c.vms.NewListPager(b.cfg.ResourceGroup, nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("azure: counting kitrun's VMs: %w", err)
		}
		for _, v := range page.Value {
			if v.Tags[cloud.TagRun] != nil {
				n++
			}
		}
	}
	return n, nil
}

type machine struct {
	*cloud.Machine
	b     *Backend
	c     *clients
	image string
	name  string

	launched bool // the VM was asked for: end() releases the image

	mu     sync.Mutex
	state  string
	serial string // the boot diagnostics serial log's URI
}

func (m *machine) rg() string { return m.b.cfg.ResourceGroup }

// The names of a machine's resources.
func osDiskName(vm string) string { return vm + "-os" }
func ipName(vm string) string     { return vm + "-ip" }
func nsgName(vm string) string    { return vm + "-nsg" }
func nicName(vm string) string    { return vm + "-nic" }

// launch creates the OS disk (a copy of the image disk), the public IP,
// the security group (with published ports), the NIC and the VM, and
// waits for it to run. What it made is deleted if it fails.
func (m *machine) launch(ctx context.Context, spec hypervisor.Spec, name string) (err error) {
	b, c, rg := m.b, m.c, m.rg()
	loc := to.Ptr(b.cfg.Location)
	tags := tagPtrs(cloud.Tags(time.Now(), b.cfg.Lifetime, map[string]string{cloud.TagName: "kitrun " + name}))
	defer func() {
		if err != nil && !m.launched {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if left, derr := b.deleteMachine(dctx, c, m.name); derr != nil {
				err = errors.Join(err, fmt.Errorf("azure: %s left for `kitrun cloud sweep --backend azure`: %w", strings.Join(left, ", "), derr))
			}
		}
	}()
	imageID := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/disks/%s", b.cfg.Subscription, rg, m.image)
	dp, err := c.disks.BeginCreateOrUpdate(ctx, rg, osDiskName(m.name), armcompute.Disk{
		Location: loc, Tags: tags,
		SKU: &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypesStandardLRS)},
		Properties: &armcompute.DiskProperties{
			OSType: to.Ptr(armcompute.OperatingSystemTypesLinux), HyperVGeneration: to.Ptr(armcompute.HyperVGenerationV2),
			CreationData: &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionCopy), SourceResourceID: to.Ptr(imageID)},
		},
	}, nil)
	var d armcompute.DisksClientCreateOrUpdateResponse
	if err == nil {
		d, err = dp.PollUntilDone(ctx, pollOpts)
	}
	if err != nil {
		return fmt.Errorf("azure: copying image disk %s for the VM: %w", m.image, err)
	}
	ipp, err := c.ips.BeginCreateOrUpdate(ctx, rg, ipName(m.name), armnetwork.PublicIPAddress{
		Location: loc, Tags: tags,
		SKU: &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{
			PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic),
		},
	}, nil)
	var ip armnetwork.PublicIPAddressesClientCreateOrUpdateResponse
	if err == nil {
		ip, err = ipp.PollUntilDone(ctx, pollOpts)
	}
	if err != nil {
		return fmt.Errorf("azure: creating public IP %s: %w", ipName(m.name), err)
	}
	if ip.Properties != nil && ip.Properties.IPAddress != nil {
		m.SetAddr(*ip.Properties.IPAddress)
	}
	// Every machine gets a security group: with no published port it
	// opens nothing (Azure's defaults still allow the virtual network).
	var rules []*armnetwork.SecurityRule
	for i, p := range spec.Publish {
		rules = append(rules, &armnetwork.SecurityRule{Name: to.Ptr(fmt.Sprintf("kitrun-%d", p.GuestPort)),
			Properties: &armnetwork.SecurityRulePropertiesFormat{
				Access: to.Ptr(armnetwork.SecurityRuleAccessAllow), Direction: to.Ptr(armnetwork.SecurityRuleDirectionInbound),
				Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP), Priority: to.Ptr(int32(1000 + i)),
				SourceAddressPrefix: to.Ptr(b.cfg.IngressCIDR), SourcePortRange: to.Ptr("*"),
				DestinationAddressPrefix: to.Ptr("*"), DestinationPortRange: to.Ptr(strconv.Itoa(p.GuestPort)),
			}})
		m.Publish(p.GuestPort)
	}
	np, err := c.nsgs.BeginCreateOrUpdate(ctx, rg, nsgName(m.name), armnetwork.SecurityGroup{
		Location: loc, Tags: tags, Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: rules}}, nil)
	var nsg armnetwork.SecurityGroupsClientCreateOrUpdateResponse
	if err == nil {
		nsg, err = np.PollUntilDone(ctx, pollOpts)
	}
	if err != nil {
		return fmt.Errorf("azure: creating network security group %s for the published ports: %w", nsgName(m.name), err)
	}
	nicp, err := c.nics.BeginCreateOrUpdate(ctx, rg, nicName(m.name), armnetwork.Interface{
		Location: loc, Tags: tags,
		Properties: &armnetwork.InterfacePropertiesFormat{
			NetworkSecurityGroup: &armnetwork.SecurityGroup{ID: nsg.ID},
			IPConfigurations: []*armnetwork.InterfaceIPConfiguration{{Name: to.Ptr("ipconfig1"),
				Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
					Subnet:                    &armnetwork.Subnet{ID: to.Ptr(b.cfg.Subnet)},
					PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
					PublicIPAddress:           &armnetwork.PublicIPAddress{ID: ip.ID},
				}}},
		}}, nil)
	var nic armnetwork.InterfacesClientCreateOrUpdateResponse
	if err == nil {
		nic, err = nicp.PollUntilDone(ctx, pollOpts)
	}
	if err != nil {
		return fmt.Errorf("azure: creating NIC %s: %w", nicName(m.name), err)
	}
	launchMu.Lock()
	n, err := b.countVMs(ctx, c)
	if err == nil && n >= b.cfg.MaxInstances {
		err = &QuotaError{Running: n, Max: b.cfg.MaxInstances, Where: rg}
	}
	if err != nil {
		launchMu.Unlock()
		return err
	}
	var userData *string
	if len(spec.Seed) > 0 {
		// kitinit reads it from IMDS (see boot/kitinit/metaseed.go).
		userData = to.Ptr(base64.StdEncoding.EncodeToString(spec.Seed))
	}
	m.MarkStarted()
	vmp, err := c.vms.BeginCreateOrUpdate(ctx, rg, m.name, armcompute.VirtualMachine{
		Location: loc, Tags: tags,
		Properties: &armcompute.VirtualMachineProperties{
			UserData:        userData,
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypes(b.cfg.VMSize))},
			StorageProfile: &armcompute.StorageProfile{OSDisk: &armcompute.OSDisk{
				CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesAttach), OSType: to.Ptr(armcompute.OperatingSystemTypesLinux),
				ManagedDisk:  &armcompute.ManagedDiskParameters{ID: d.ID},
				DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
			}},
			NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{
				ID: nic.ID, Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: to.Ptr(true), DeleteOption: to.Ptr(armcompute.DeleteOptionsDelete)}}}},
			// Boot diagnostics in managed storage: the serial log.
			DiagnosticsProfile: &armcompute.DiagnosticsProfile{BootDiagnostics: &armcompute.BootDiagnostics{Enabled: to.Ptr(true)}},
		},
	}, nil)
	launchMu.Unlock()
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && (re.ErrorCode == "SkuNotAvailable" || re.ErrorCode == "AllocationFailed" || re.ErrorCode == "ZonalAllocationFailed" || re.ErrorCode == "OperationNotAllowed" || strings.Contains(re.ErrorCode, "Quota")) {
			hint := "try another VM size (vm-size=) or location"
			if re.ErrorCode == "OperationNotAllowed" || strings.Contains(re.ErrorCode, "Quota") {
				hint = "the subscription's quota is reached: delete other VMs, try another VM size, or ask Azure for a higher quota"
			}
			return fmt.Errorf("azure: Azure cannot create a %s VM in %s now (%s); %s", b.cfg.VMSize, b.cfg.Location, re.ErrorCode, hint)
		}
		return fmt.Errorf("azure: creating VM %s: %w", m.name, err)
	}
	m.launched = true
	m.Accepted(m.name)
	m.Follow(cloud.PollConsole(m.snapshot, cloud.PollOptions{Interval: b.cfg.Poll}))
	go m.watch(vmp)
	return m.WaitRunning(ctx, 10*time.Minute, func() error { return m.Abandon(m.ForceOff) })
}

// snapshot is the VM's boot diagnostics serial log: the whole log, read
// from the blob URI that RetrieveBootDiagnosticsData gives (a SAS URI,
// asked for again when it stops working).
func (m *machine) snapshot(ctx context.Context) ([]byte, error) {
	m.mu.Lock()
	uri := m.serial
	m.mu.Unlock()
	if uri == "" {
		r, err := m.c.vms.RetrieveBootDiagnosticsData(ctx, m.rg(), m.name,
			&armcompute.VirtualMachinesClientRetrieveBootDiagnosticsDataOptions{SasURIExpirationTimeInMinutes: to.Ptr(int32(120))})
		if err != nil {
			return nil, err
		}
		if r.SerialConsoleLogBlobURI == nil {
			return nil, nil // not yet
		}
		uri = *r.SerialConsoleLogBlobURI
		m.mu.Lock()
		m.serial = uri
		m.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil // nothing logged yet
	}
	if resp.StatusCode != http.StatusOK {
		m.mu.Lock()
		m.serial = ""
		m.mu.Unlock()
		return nil, fmt.Errorf("reading the serial log: %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// powerState is the VM's PowerState/… code ("" while unknown), or
// "deleted".
func (m *machine) powerState(ctx context.Context) (string, error) {
	iv, err := m.c.vms.InstanceView(ctx, m.rg(), m.name, nil)
	if notFound(err) {
		return "deleted", nil
	}
	if err != nil {
		return "", err
	}
	for _, s := range iv.Statuses {
		if s.Code != nil && strings.HasPrefix(*s.Code, "PowerState/") {
			return strings.TrimPrefix(*s.Code, "PowerState/"), nil
		}
	}
	return "", nil
}

// watch waits for the VM's creation, follows its power state until it is
// stopped or gone, enforces its lifetime, then tears the machine down.
func (m *machine) watch(vmp *runtime.Poller[armcompute.VirtualMachinesClientCreateOrUpdateResponse]) {
	lifetime := time.NewTimer(m.b.cfg.Lifetime)
	defer lifetime.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	_, err := vmp.PollUntilDone(ctx, pollOpts)
	cancel()
	if err != nil {
		m.end("creating the VM failed: " + err.Error())
		return
	}
	runningSeen := false
	reason := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := m.powerState(ctx)
		cancel()
		if err == nil && st != "" {
			m.mu.Lock()
			m.state = st
			m.mu.Unlock()
			if !runningSeen && st != "starting" {
				runningSeen = true
				m.Running()
			}
			if st == "stopped" || st == "deallocated" || st == "deleted" {
				reason = st
				break
			}
		}
		select {
		case <-time.After(m.b.cfg.Poll):
		case <-lifetime.C:
			m.Force(fmt.Sprintf("its lifetime (%s) passed", m.b.cfg.Lifetime), false)
			m.powerOff(context.Background(), true)
		}
	}
	m.end(reason)
}

// powerOff is PowerOff: skip=false is the power button (the guest is
// asked to shut down), skip=true pulls the plug.
func (m *machine) powerOff(ctx context.Context, skip bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	p, err := m.c.vms.BeginPowerOff(ctx, m.rg(), m.name, &armcompute.VirtualMachinesClientBeginPowerOffOptions{SkipShutdown: to.Ptr(skip)})
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if skip {
		_, err = p.PollUntilDone(ctx, pollOpts)
	}
	return err
}

// end reads the last of the console, deletes the machine's resources and
// reports how it ended.
func (m *machine) end(reason string) {
	var ended error
	switch forced := m.Forced(); {
	case forced != "":
		ended = fmt.Errorf("VM %s stopped by the host: %s", m.name, forced)
	case reason == "stopped" || reason == "deallocated":
		// The guest powered off (by itself, or on the power button).
	default:
		ended = fmt.Errorf("VM %s ended: %s", m.name, reason)
	}
	m.End(reason, ended, func(t *cloud.Teardown) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		left, err := m.b.deleteMachine(ctx, m.c, m.name)
		t.Add(err, left...)
		if imageUsers.Use(m.image, -1) == 0 && !m.b.cfg.KeepImage {
			t.Add(m.b.deleteDisk(m.image), "disk "+m.image)
		}
	})
}

// deleteMachine deletes a machine's VM, NIC, security group, public IP
// and OS disk, in that order (each waits for the one before); what does
// not exist is skipped. It returns what is left.
func (b *Backend) deleteMachine(ctx context.Context, c *clients, vm string) (left []string, err error) {
	rg := b.cfg.ResourceGroup
	var errs []error
	step := func(kind, name string, err error) bool {
		if err != nil && !notFound(err) {
			left = append(left, kind+" "+name)
			errs = append(errs, fmt.Errorf("deleting %s %s: %w", kind, name, err))
			return false
		}
		return true
	}
	if !step("VM", vm, wait(c.vms.BeginDelete(ctx, rg, vm, &armcompute.VirtualMachinesClientBeginDeleteOptions{ForceDeletion: to.Ptr(true)}))) {
		// The VM holds the rest.
		return append(left, "NIC "+nicName(vm), "network security group "+nsgName(vm), "public IP "+ipName(vm), "disk "+osDiskName(vm)), errors.Join(errs...)
	}
	step("NIC", nicName(vm), wait(c.nics.BeginDelete(ctx, rg, nicName(vm), nil)))
	step("network security group", nsgName(vm), wait(c.nsgs.BeginDelete(ctx, rg, nsgName(vm), nil)))
	step("public IP", ipName(vm), wait(c.ips.BeginDelete(ctx, rg, ipName(vm), nil)))
	step("disk", osDiskName(vm), wait(c.disks.BeginDelete(ctx, rg, osDiskName(vm), nil)))
	return left, errors.Join(errs...)
}

// wait waits for a long-running operation's end.
func wait[T any](p *runtime.Poller[T], err error) error {
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err = p.PollUntilDone(ctx, pollOpts)
	return err
}

// deleteDisk deletes a managed disk (an image disk).
func (b *Backend) deleteDisk(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := wait(b.clients.disks.BeginDelete(ctx, b.cfg.ResourceGroup, name, nil))
	if err != nil && !notFound(err) {
		return fmt.Errorf("deleting disk %s: %w", name, err)
	}
	return nil
}

// PowerButton implements hypervisor.Machine: PowerOff without
// skipShutdown asks the guest to shut down (see the README on what a
// Hyper-V guest receives); the VM is then stopped, and the backend
// deletes it.
func (m *machine) PowerButton(ctx context.Context) error {
	if err := m.Press(); err != nil {
		return err
	}
	p, err := m.c.vms.BeginPowerOff(ctx, m.rg(), m.name, &armcompute.VirtualMachinesClientBeginPowerOffOptions{SkipShutdown: to.Ptr(false)})
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("azure: PowerOff %s: %w", m.name, err)
	}
	_ = p // the guest's shutdown is followed by watch
	return nil
}

// ForceOff implements hypervisor.Machine: PowerOff with skipShutdown, then
// wait until the machine is torn down.
func (m *machine) ForceOff(ctx context.Context) error {
	return m.ForceOffWith(ctx, "PowerOff (skipShutdown)", func(ctx context.Context) error { return m.powerOff(ctx, true) })
}

// Destroy implements hypervisor.Backend: it deletes the VM and the
// resources named after it.
func (b *Backend) Destroy(ctx context.Context, id string) error {
	if !strings.HasPrefix(id, VMPrefix) || strings.HasPrefix(id, ImageDiskPrefix) {
		return nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	if left, err := b.deleteMachine(ctx, c, id); err != nil {
		return fmt.Errorf("azure: destroying %s (left: %s): %w", id, strings.Join(left, ", "), err)
	}
	return nil
}

// Alive implements hypervisor.Backend: the VM exists and is not stopped.
func (b *Backend) Alive(ctx context.Context, id string) (bool, error) {
	if !strings.HasPrefix(id, VMPrefix) {
		return false, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return false, err
	}
	m := &machine{b: b, c: c, name: id}
	st, err := m.powerState(ctx)
	if err != nil {
		return false, fmt.Errorf("azure: instance view of %s: %w", id, err)
	}
	switch st {
	case "stopped", "deallocated", "deleted":
		return false, nil
	}
	return true, nil
}
