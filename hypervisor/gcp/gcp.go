// Package gcp is kitrun's Google Compute Engine backend. It boots an
// image's `gcp` disk (raw-efi as disk.raw in a GNU tar.gz): the archive goes
// to Cloud Storage and becomes a Compute Engine image (images.insert with
// rawDisk.source, UEFI_COMPATIBLE), uploaded once per disk digest and
// reused; a machine is one instance (instances.insert). The guest's
// console and kitinit's events, which share it, are read through
// getSerialPortOutput, a true stream (a byte offset in, the next one out;
// output the platform dropped is marked); published ports are reached at
// the instance's external address through a firewall rule of the
// machine's own. Every resource is labelled with kitrun's run ID and an
// expiry (firewall rules, which take no labels, carry them in their
// description), and `kitrun cloud sweep --backend gcp` removes what a
// killed run left.
//
// Credentials come only from Application Default Credentials. The
// endpoints can be overridden (endpoint=URL, storage-endpoint=URL); an
// endpoint on a loopback address is taken for a local fake and is called
// without credentials, which is how the tests point the real REST
// clients at hypervisor/gcp/gcpfake.
//
// This package links Google's API clients: only kitrun's command imports
// it, never the packages testcases/vmtest users import.
package gcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	compute "google.golang.org/api/compute/v1"
	"google.golang.org/api/option"
	storage "google.golang.org/api/storage/v1"

	"golang.org/x/oauth2/google"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Name is the backend's registry name.
const Name = "gcp"

// Option keys (`--backend-opt KEY=VALUE`).
const (
	OptProject         = "project"
	OptZone            = "zone"
	OptMachineType     = "machine-type"
	OptBucket          = "bucket"
	OptEndpoint        = "endpoint"
	OptStorageEndpoint = "storage-endpoint"
	OptNetwork         = "network"
	OptIngressCIDR     = cloud.OptIngressCIDR
	OptAddress         = "address"
	OptMaxInstances    = cloud.OptMaxInstances
	OptLifetime        = cloud.OptLifetime
	OptImageTTL        = cloud.OptImageTTL
	OptPoll            = cloud.OptPoll
	OptMaxBackoff      = "max-backoff"
	OptMaxAttempts     = "max-attempts"
	OptGVNIC           = "gvnic"
	OptKeepImage       = cloud.OptKeepImage
)

var optionKeys = []string{OptProject, OptZone, OptMachineType, OptBucket, OptEndpoint, OptStorageEndpoint,
	OptNetwork, OptIngressCIDR, OptAddress, OptMaxInstances, OptLifetime, OptImageTTL, OptPoll, OptMaxBackoff,
	OptMaxAttempts, OptGVNIC, OptKeepImage}

// Config is the backend's settings, from its options.
type Config struct {
	Project     string // "" is ADC's project
	Zone        string
	MachineType string // "" is the arch's default
	Bucket      string
	// Endpoint is Compute Engine's REST base (…/compute/v1/);
	// StorageEndpoint Cloud Storage's JSON API base (…/storage/v1/).
	Endpoint, StorageEndpoint string
	Network                   string // default "default"
	// Address is "external" (default; the internal one when there is
	// none) or "internal".
	Address string
	// Common: ingress-cidr (the firewall rule's source range),
	// max-instances, lifetime (also the instance's
	// scheduling.maxRunDuration: Compute Engine deletes it then), image-ttl,
	// poll and keep-image.
	cloud.Common
	MaxBackoff  time.Duration
	MaxAttempts int
	// GVNIC: the image says it supports gVNIC, and instances ask for it
	// (the platform then loads the gve module too). Default: virtio-net.
	GVNIC bool
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
		Project: o[OptProject], Zone: o[OptZone], MachineType: o[OptMachineType], Bucket: o[OptBucket],
		Endpoint: o[OptEndpoint], StorageEndpoint: o[OptStorageEndpoint], Network: o[OptNetwork],
		Address: o[OptAddress], Common: common, MaxBackoff: 20 * time.Second, MaxAttempts: 8,
	}
	if err := cloud.ParseBools(Name, o, cloud.BoolOption{Key: OptGVNIC, Dst: &c.GVNIC}); err != nil {
		return Config{}, err
	}
	if c.Network == "" {
		c.Network = "default"
	}
	if err := cloud.CheckEndpoints(Name, c.Endpoint, c.StorageEndpoint); err != nil {
		return Config{}, err
	}
	switch c.Address {
	case "", "external", "internal":
	default:
		return Config{}, fmt.Errorf("gcp: address=%q; valid: external, internal", c.Address)
	}
	if err := cloud.ParseOptions(Name, o,
		[]cloud.DurationOption{{Key: OptMaxBackoff, Dst: &c.MaxBackoff}},
		[]cloud.CountOption{{Key: OptMaxAttempts, Dst: &c.MaxAttempts}}); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Backend runs machines on Compute Engine.
type Backend struct {
	cfg     Config
	clients *clients // made on first use: a build needs no credentials
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
	compute *compute.Service
	storage *storage.Service
	project string
}

// CredentialsError says that Application Default Credentials found none.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string {
	return "gcp: no credentials: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, " +
		"`gcloud auth application-default login`'s file, or the metadata server on Google Cloud) found none: " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// isLocal says whether an endpoint is on a loopback address: a local fake.
func isLocal(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// connect makes the REST clients: with Application Default Credentials,
// or with none for endpoints on loopback (the tests' fakes).
func (b *Backend) connect(ctx context.Context) (*clients, error) {
	if b.clients != nil {
		return b.clients, nil
	}
	c := &clients{project: b.cfg.Project}
	local := b.cfg.Endpoint != "" && isLocal(b.cfg.Endpoint) && (b.cfg.StorageEndpoint == "" || isLocal(b.cfg.StorageEndpoint))
	var copts, sopts []option.ClientOption
	if local {
		// A local fake: no credentials are looked for, none are sent.
		copts = append(copts, option.WithoutAuthentication())
		sopts = append(sopts, option.WithoutAuthentication())
	} else {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		creds, err := google.FindDefaultCredentials(cctx, compute.CloudPlatformScope)
		cancel()
		if err == nil {
			// Credentials that cannot make a token are none: say so
			// now, not at the first call.
			_, err = creds.TokenSource.Token()
		}
		if err != nil {
			return nil, &CredentialsError{Err: err}
		}
		if c.project == "" {
			c.project = creds.ProjectID
		}
		copts = append(copts, option.WithCredentials(creds))
		sopts = append(sopts, option.WithCredentials(creds))
	}
	if c.project == "" {
		return nil, errors.New("gcp: no project: give --backend-opt project=PROJECT (or use credentials that name one)")
	}
	if b.cfg.Zone == "" {
		return nil, errors.New("gcp: no zone: give --backend-opt zone=ZONE (e.g. europe-west1-b)")
	}
	if b.cfg.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(b.cfg.Endpoint))
	}
	if b.cfg.StorageEndpoint != "" {
		sopts = append(sopts, option.WithEndpoint(b.cfg.StorageEndpoint))
	}
	var err error
	if c.compute, err = compute.NewService(ctx, copts...); err != nil {
		return nil, fmt.Errorf("gcp: %w", err)
	}
	if c.storage, err = storage.NewService(ctx, sopts...); err != nil {
		return nil, fmt.Errorf("gcp: %w", err)
	}
	b.clients = c
	return c, nil
}

// Verify implements hypervisor.Backend: credentials, project, zone, and
// that Compute Engine answers.
func (b *Backend) Verify(ctx context.Context, a arch.Arch) error {
	if _, err := b.Platform(a); err != nil {
		return err
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	if _, err := retry(ctx, b, func() (*compute.MachineType, error) {
		return c.compute.MachineTypes.Get(c.project, b.cfg.Zone, b.machineType(a)).Context(ctx).Do()
	}); err != nil {
		return fmt.Errorf("gcp: machine type %s in %s/%s: %w", b.machineType(a), c.project, b.cfg.Zone, err)
	}
	return nil
}

// Version implements hypervisor.Backend.
func (b *Backend) Version(ctx context.Context, a arch.Arch) (string, error) {
	return fmt.Sprintf("gce %s %s", b.cfg.Zone, b.machineType(a)), nil
}

func (b *Backend) machineType(a arch.Arch) string {
	if b.cfg.MachineType != "" {
		return b.cfg.MachineType
	}
	if a.Name == "aarch64" {
		return "t2a-standard-1"
	}
	return "e2-micro"
}

// Machine is the one machine type of the platform.
const Machine = "gce"

// Platform implements hypervisor.Backend. The console is the first serial
// port, ttyS0 at 115200 baud, which getSerialPortOutput shows (kitinit's
// events share it). The NIC is virtio-net (most machine types; under the
// tests' fake, QEMU's) or, with gvnic=true, gVNIC (the gve module); the
// boot disk is virtio-scsi or NVMe, which kitinit does not mount anyway.
// Compute Engine has no fw_cfg: a boot's per-boot files (SSH keys) are
// the instance metadata item kitrun-seed, which kitinit reads from the
// metadata server.
func (b *Backend) Platform(a arch.Arch) (platform.Platform, error) {
	if a.Name != "x86_64" && a.Name != "aarch64" {
		return platform.Platform{}, fmt.Errorf("Compute Engine has no %s instances (it has x86_64 and aarch64)", a.Name)
	}
	hw := platform.Hardware{
		Console:    "ttyS0,115200n8",
		NICModules: []string{"virtio_pci", "virtio_net"},
		DiskSeed:   initproto.SeedGCE,
		KernelArgs: []string{"no_timer_check", "nosoftlockup"},
	}
	if b.cfg.GVNIC {
		hw.NICModules = append(hw.NICModules, "gve")
	}
	return platform.Platform{
		Name: Name, Arch: a, DefaultMachine: Machine,
		Machines: map[string]platform.Hardware{Machine: hw},
		// DHCP: Compute Engine leases a /32 with a gateway outside it.
		Network: platform.Network{},
	}, nil
}
