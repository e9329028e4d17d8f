// Package azure is kitrun's Microsoft Azure backend. It boots an image's
// `vhd` disk (raw-efi as a fixed VHD of whole MiB): the VHD is uploaded
// once per disk digest as a page blob (all-zero ranges skipped: the VHD
// is sparse) and imported as a managed disk (Hyper-V generation 2, tagged
// with the digest, kept for reuse); a machine is a copy of that disk, a
// public IP, a network security group opening the published ports, a NIC
// and a VM (boot diagnostics on). The guest's console and kitinit's
// events, which share it, are read through the VM's boot diagnostics
// serial log, a snapshot that hypervisor/cloud turns into a stream. Every
// resource is tagged with kitrun's run ID and an expiry, and `kitrun cloud
// sweep --backend azure` removes what a killed run left.
//
// Credentials come only from azidentity's DefaultAzureCredential;
// endpoints can be overridden (arm-endpoint=, blob-endpoint=), which is how
// the tests point the real SDK clients at hypervisor/azure/azurefake.
//
// This package links the Azure SDK: only kitrun's command imports it,
// never the packages testcases/vmtest users import.
package azure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Name is the backend's registry name.
const Name = "azure"

// Option keys (`--backend-opt KEY=VALUE`).
const (
	OptSubscription   = "subscription"
	OptResourceGroup  = "resource-group"
	OptLocation       = "location"
	OptVMSize         = "vm-size"
	OptStorageAccount = "storage-account"
	OptContainer      = "container"
	OptSubnet         = "subnet"
	OptIngressCIDR    = cloud.OptIngressCIDR
	OptARMEndpoint    = "arm-endpoint"
	OptBlobEndpoint   = "blob-endpoint"
	OptBlobCA         = "blob-ca"
	OptFakeCredential = "fake-credential"
	OptMaxInstances   = cloud.OptMaxInstances
	OptLifetime       = cloud.OptLifetime
	OptImageTTL       = cloud.OptImageTTL
	OptPoll           = cloud.OptPoll
	OptMaxRetries     = "max-retries"
	OptKeepImage      = cloud.OptKeepImage
	OptHardware       = "hardware"
)

var optionKeys = []string{OptSubscription, OptResourceGroup, OptLocation, OptVMSize, OptStorageAccount, OptContainer,
	OptSubnet, OptIngressCIDR, OptARMEndpoint, OptBlobEndpoint, OptBlobCA, OptFakeCredential, OptMaxInstances, OptLifetime,
	OptImageTTL, OptPoll, OptMaxRetries, OptKeepImage, OptHardware}

// Config is the backend's settings, from its options.
type Config struct {
	Subscription, ResourceGroup, Location string
	VMSize                                string
	// StorageAccount and Container: where the VHD is uploaded (a page
	// blob, deleted once the managed disk is imported).
	StorageAccount, Container string
	// Subnet is the resource ID of the subnet NICs are put in.
	Subnet string
	// ARMEndpoint and BlobEndpoint override Azure Resource Manager's URL
	// and the storage account's blob URL.
	ARMEndpoint, BlobEndpoint string
	// BlobCA is a PEM file of the certificates the blob endpoint's is
	// checked against instead of the system's (a private endpoint, or
	// the tests' Azurite with its self-signed certificate).
	BlobCA string
	// FakeCredential uses an unsigned token (a JWT with Azure AD's
	// issuer and the audience asked for, which Azurite's basic OAuth
	// accepts) instead of DefaultAzureCredential: only with both
	// endpoints overridden (the tests' fakes).
	FakeCredential bool
	// Common: ingress-cidr (the network security group's source range),
	// max-instances, lifetime, image-ttl, poll and keep-image.
	cloud.Common
	MaxRetries int
	// Hardware "qemu": the VMs are QEMU's q35 (virtio NIC, ACPI button),
	// not Hyper-V's, as under the fake ARM of the tests.
	Hardware string
}

// ParseConfig reads the backend's options.
func ParseConfig(o hypervisor.Options) (Config, error) {
	if err := o.Check(Name, optionKeys...); err != nil {
		return Config{}, err
	}
	common, err := cloud.ParseCommon(Name, o)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		Subscription: o[OptSubscription], ResourceGroup: o[OptResourceGroup], Location: o[OptLocation],
		VMSize: o[OptVMSize], StorageAccount: o[OptStorageAccount], Container: o[OptContainer],
		Subnet: o[OptSubnet], ARMEndpoint: o[OptARMEndpoint], BlobEndpoint: o[OptBlobEndpoint],
		BlobCA: o[OptBlobCA], Common: common, MaxRetries: 6, Hardware: o[OptHardware],
	}
	if c.VMSize == "" {
		c.VMSize = "Standard_B1s"
	}
	if c.Container == "" {
		c.Container = "kitrun"
	}
	if err := cloud.ParseBools(Name, o, cloud.BoolOption{Key: OptFakeCredential, Dst: &c.FakeCredential}); err != nil {
		return Config{}, err
	}
	if err := cloud.CheckEndpoints(Name, c.ARMEndpoint, c.BlobEndpoint); err != nil {
		return Config{}, err
	}
	if c.FakeCredential && (c.ARMEndpoint == "" || c.BlobEndpoint == "") {
		return Config{}, errors.New("azure: fake-credential=true is for local fakes only: it needs both arm-endpoint and blob-endpoint overridden")
	}
	if c.BlobEndpoint == "" && c.StorageAccount != "" {
		c.BlobEndpoint = "https://" + c.StorageAccount + ".blob.core.windows.net/"
	}
	switch c.Hardware {
	case "", "qemu":
	default:
		return Config{}, fmt.Errorf("azure: hardware=%q; valid: qemu (for the fake ARM that boots VMs with QEMU)", c.Hardware)
	}
	if err := cloud.ParseOptions(Name, o, nil, []cloud.CountOption{{Key: OptMaxRetries, Dst: &c.MaxRetries}}); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Backend runs machines on Azure.
type Backend struct {
	cfg     Config
	clients *clients
}

var _ hypervisor.Backend = (*Backend)(nil)

func init() {
	cloud.Register(Name, New)
}

// New makes the backend from its options.
func New(o hypervisor.Options) (*Backend, error) {
	c, err := ParseConfig(o)
	if err != nil {
		return nil, err
	}
	return &Backend{cfg: c}, nil
}

// Name implements hypervisor.Backend.
func (b *Backend) Name() string { return Name }

type clients struct {
	cred  azcore.TokenCredential
	blobO policy.ClientOptions
	vms   *armcompute.VirtualMachinesClient
	sizes *armcompute.VirtualMachineSizesClient
	disks *armcompute.DisksClient
	nics  *armnetwork.InterfacesClient
	ips   *armnetwork.PublicIPAddressesClient
	nsgs  *armnetwork.SecurityGroupsClient
}

// CredentialsError says that DefaultAzureCredential found no credentials.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string {
	return "azure: no credentials: azidentity's DefaultAzureCredential (AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or a certificate, " +
		"workload identity, a managed identity, `az login`, `azd auth login`) found none: " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

func (b *Backend) connect(ctx context.Context) (*clients, error) {
	if b.clients != nil {
		return b.clients, nil
	}
	cfg := b.cfg
	var missing []string
	for _, m := range []struct{ k, v string }{{OptSubscription, cfg.Subscription}, {OptResourceGroup, cfg.ResourceGroup}, {OptLocation, cfg.Location}} {
		if m.v == "" {
			missing = append(missing, m.k+"=…")
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("azure: give --backend-opt %s", strings.Join(missing, ","))
	}
	co := policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: int32(cfg.MaxRetries)}}
	armCloud := azcloud.AzurePublic
	if cfg.ARMEndpoint != "" {
		armCloud.Services = map[azcloud.ServiceName]azcloud.ServiceConfiguration{
			azcloud.ResourceManager: {Endpoint: cfg.ARMEndpoint, Audience: azcloud.AzurePublic.Services[azcloud.ResourceManager].Audience},
		}
		co.InsecureAllowCredentialWithHTTP = strings.HasPrefix(cfg.ARMEndpoint, "http:")
	}
	co.Cloud = armCloud
	var cred azcore.TokenCredential
	if cfg.FakeCredential {
		cred = fakeCredential{}
	} else {
		dc, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, &CredentialsError{Err: err}
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = dc.GetToken(cctx, policy.TokenRequestOptions{Scopes: []string{azcloud.AzurePublic.Services[azcloud.ResourceManager].Audience + "/.default"}})
		cancel()
		if err != nil {
			return nil, &CredentialsError{Err: err}
		}
		cred = dc
	}
	ao := &arm.ClientOptions{ClientOptions: co}
	cf, err := armcompute.NewClientFactory(cfg.Subscription, cred, ao)
	if err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	nf, err := armnetwork.NewClientFactory(cfg.Subscription, cred, ao)
	if err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	bo := policy.ClientOptions{Retry: co.Retry, InsecureAllowCredentialWithHTTP: strings.HasPrefix(cfg.BlobEndpoint, "http:")}
	if cfg.BlobCA != "" {
		pem, err := os.ReadFile(cfg.BlobCA)
		if err != nil {
			return nil, fmt.Errorf("azure: %s: %w", OptBlobCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("azure: %s=%s holds no PEM certificate", OptBlobCA, cfg.BlobCA)
		}
		bo.Transport = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	c := &clients{cred: cred, blobO: bo,
		vms: cf.NewVirtualMachinesClient(), sizes: cf.NewVirtualMachineSizesClient(), disks: cf.NewDisksClient(),
		nics: nf.NewInterfacesClient(), ips: nf.NewPublicIPAddressesClient(), nsgs: nf.NewSecurityGroupsClient()}
	b.clients = c
	return c, nil
}

// Verify implements hypervisor.Backend: credentials, and that the VM size
// is offered in the location.
func (b *Backend) Verify(ctx context.Context, a arch.Arch) error {
	if _, err := b.Platform(a); err != nil {
		return err
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	return b.checkSize(ctx, c)
}

// SizeError says that the location does not offer the VM size.
type SizeError struct{ Size, Location string }

func (e *SizeError) Error() string {
	return fmt.Sprintf("azure: VM size %s is not available in %s; choose another with --backend-opt vm-size=SIZE (see `az vm list-sizes --location %s`)", e.Size, e.Location, e.Location)
}

func (b *Backend) checkSize(ctx context.Context, c *clients) error {
	p := c.sizes.NewListPager(b.cfg.Location, nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("azure: listing VM sizes in %s: %w", b.cfg.Location, err)
		}
		for _, s := range page.Value {
			if s.Name != nil && strings.EqualFold(*s.Name, b.cfg.VMSize) {
				return nil
			}
		}
	}
	return &SizeError{Size: b.cfg.VMSize, Location: b.cfg.Location}
}

// Version implements hypervisor.Backend.
func (b *Backend) Version(ctx context.Context, a arch.Arch) (string, error) {
	return fmt.Sprintf("azure %s %s", b.cfg.Location, b.cfg.VMSize), nil
}

// Machine types.
const (
	// MachineGen2 is an Azure generation 2 VM: Hyper-V, UEFI, VMBus.
	MachineGen2 = "gen2"
	// MachineGen2QEMU is what the fake's QEMU gives in its place
	// (hardware=qemu): the same UEFI boot and COM1, a virtio NIC.
	MachineGen2QEMU = "gen2-qemu"
)

// Platform implements hypervisor.Backend. An Azure generation 2 VM is a
// Hyper-V one: the console is COM1 (ttyS0, what boot diagnostics logs),
// which kitinit's events share (only COM1 is logged); the NIC is
// hv_netvsc on hv_vmbus; DHCP from the virtual network. Under the fake
// (hardware=qemu) the NIC is virtio-net. Azure has no fw_cfg: a boot's
// per-boot files (SSH keys) are the VM's userData, which kitinit reads
// from Azure IMDS.
func (b *Backend) Platform(a arch.Arch) (platform.Platform, error) {
	if a.Name != "x86_64" {
		return platform.Platform{}, fmt.Errorf("the azure backend has no machines for %s; valid: x86_64", a.Name)
	}
	p := platform.Platform{Name: Name, Arch: a, DefaultMachine: MachineGen2, Network: platform.Network{}}
	if b.cfg.Hardware == "qemu" {
		p.DefaultMachine = MachineGen2QEMU
		p.Machines = map[string]platform.Hardware{MachineGen2QEMU: {
			Console: "ttyS0,115200n8", NICModules: []string{"virtio_pci", "virtio_net"},
			KernelArgs: []string{"no_timer_check", "nosoftlockup"}, DiskSeed: initproto.SeedAzure,
		}}
		return p, nil
	}
	p.Machines = map[string]platform.Hardware{MachineGen2: {
		Console: "ttyS0,115200n8", PanicModules: []string{"hv_vmbus"},
		NICModules: []string{"hv_vmbus", "hv_netvsc"},
		KernelArgs: []string{"no_timer_check", "nosoftlockup"}, DiskSeed: initproto.SeedAzure,
	}}
	return p, nil
}

// fakeCredential is fake-credential=true: an unsigned token shaped as
// Azure AD's (a JWT with its issuer, the audience of the scope asked for,
// and a lifetime). The tests' fake ARM wants a bearer token; Azurite's
// basic OAuth checks a token's issuer, audience and times, not its
// signature.
type fakeCredential struct{}

func (fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	aud := "https://management.azure.com/"
	if len(o.Scopes) > 0 {
		aud = strings.TrimSuffix(o.Scopes[0], ".default")
	}
	now := time.Now()
	exp := now.Add(time.Hour)
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{
		"aud": aud, "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": exp.Unix(),
		"oid": "00000000-0000-0000-0000-00000000cafe", "tid": "00000000-0000-0000-0000-000000000000",
	})
	tok := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(claims) + "."
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}
