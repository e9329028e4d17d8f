// Package aws is kitrun's Amazon EC2 backend. It boots an image's `aws`
// disk (raw-efi plus boot/disk/awsimport's manifest): the disk goes to S3
// and becomes an EBS snapshot (ImportSnapshot) and an AMI (RegisterImage,
// UEFI, ENA), uploaded once per disk digest and reused; a machine is one
// instance (RunInstances). The guest's console and kitinit's events, which
// share it, are read through GetConsoleOutput's snapshots
// (hypervisor/cloud turns them into a stream); published ports are reached
// at the instance's address through a security group of the machine's own.
// Every resource is tagged with kitrun's run ID and an expiry, and
// `kitrun cloud sweep --backend aws` removes what a killed run left.
//
// Credentials come only from the SDK's default chain; endpoints can be
// overridden (endpoint=URL), which is how the tests point the real SDK
// clients at the fakes in hypervisor/aws/awsfake.
//
// This package links the AWS SDK: only kitrun's command imports it, never
// the packages testcases/vmtest users import.
package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
)

// Name is the backend's registry name.
const Name = "aws"

// Option keys (`--backend-opt KEY=VALUE`).
const (
	OptRegion        = "region"
	OptInstanceType  = "instance-type"
	OptBucket        = "bucket"
	OptEndpoint      = "endpoint"
	OptEC2Endpoint   = "ec2-endpoint"
	OptS3Endpoint    = "s3-endpoint"
	OptSubnet        = "subnet"
	OptSecurityGroup = "security-group"
	OptIngressCIDR   = cloud.OptIngressCIDR
	OptAddress       = "address"
	OptMaxInstances  = cloud.OptMaxInstances
	OptLifetime      = cloud.OptLifetime
	OptImageTTL      = cloud.OptImageTTL
	OptPoll          = cloud.OptPoll
	OptMaxBackoff    = "max-backoff"
	OptMaxAttempts   = "max-attempts"
	OptImportTimeout = "import-timeout"
	OptEmulatedNIC   = "emulated-nic"
	OptKeepImage     = cloud.OptKeepImage
)

var optionKeys = []string{OptRegion, OptInstanceType, OptBucket, OptEndpoint, OptEC2Endpoint, OptS3Endpoint,
	OptSubnet, OptSecurityGroup, OptIngressCIDR, OptAddress, OptMaxInstances, OptLifetime, OptImageTTL,
	OptPoll, OptMaxBackoff, OptMaxAttempts, OptImportTimeout, OptEmulatedNIC, OptKeepImage}

// Config is the backend's settings, from its options.
type Config struct {
	Region       string
	InstanceType string // "" is the arch's default
	Bucket       string
	EC2Endpoint  string
	S3Endpoint   string
	Subnet       string
	// SecurityGroup is used as it is; otherwise a machine that publishes
	// ports gets a group of its own opening them to IngressCIDR.
	SecurityGroup string
	// Address is "public" (default; the private one when there is none)
	// or "private": where Endpoint points.
	Address string
	// Common: ingress-cidr, max-instances, lifetime (the kitrun:expires
	// tag), image-ttl, poll and keep-image (the AMI and its snapshot).
	cloud.Common
	MaxBackoff    time.Duration
	MaxAttempts   int
	ImportTimeout time.Duration
	// EmulatedNIC "virtio": the instances' NIC is virtio-net behind QEMU
	// user networking, as under the fake EC2 of the tests — not ENA. The
	// platform then also loads virtio's modules.
	EmulatedNIC string
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
		Region: o[OptRegion], InstanceType: o[OptInstanceType], Bucket: o[OptBucket],
		EC2Endpoint: o[OptEC2Endpoint], S3Endpoint: o[OptS3Endpoint], Subnet: o[OptSubnet],
		SecurityGroup: o[OptSecurityGroup], Address: o[OptAddress], Common: common,
		MaxBackoff: 20 * time.Second, MaxAttempts: 8, ImportTimeout: 30 * time.Minute,
		EmulatedNIC: o[OptEmulatedNIC],
	}
	if e := o[OptEndpoint]; e != "" {
		if c.EC2Endpoint == "" {
			c.EC2Endpoint = e
		}
		if c.S3Endpoint == "" {
			c.S3Endpoint = e
		}
	}
	if err := cloud.CheckEndpoints(Name, c.EC2Endpoint, c.S3Endpoint); err != nil {
		return Config{}, err
	}
	switch c.Address {
	case "", "public", "private":
	default:
		return Config{}, fmt.Errorf("aws: address=%q; valid: public, private", c.Address)
	}
	switch c.EmulatedNIC {
	case "", "virtio":
	default:
		return Config{}, fmt.Errorf("aws: emulated-nic=%q; valid: virtio (for the fake EC2 that boots instances with QEMU)", c.EmulatedNIC)
	}
	if err := cloud.ParseOptions(Name, o,
		[]cloud.DurationOption{{Key: OptMaxBackoff, Dst: &c.MaxBackoff}, {Key: OptImportTimeout, Dst: &c.ImportTimeout}},
		[]cloud.CountOption{{Key: OptMaxAttempts, Dst: &c.MaxAttempts}}); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Backend runs machines on EC2.
type Backend struct {
	cfg Config
	// clients are made on first use: a backend that only names its
	// platform (a build) needs no credentials.
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
	ec2    *ec2.Client
	s3     *s3.Client
	region string
}

// CredentialsError says that the default chain found no credentials.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string {
	return "aws: no credentials: the AWS SDK's default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
		"AWS_PROFILE and ~/.aws/config and credentials, SSO, web identity, ECS or EC2 instance roles) found none: " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// connect loads the SDK's configuration from the default chain and checks
// that it holds credentials.
func (b *Backend) connect(ctx context.Context) (*clients, error) {
	if b.clients != nil {
		return b.clients, nil
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = b.cfg.MaxAttempts
				o.MaxBackoff = b.cfg.MaxBackoff
			})
		}),
	}
	if b.cfg.Region != "" {
		opts = append(opts, config.WithRegion(b.cfg.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws: loading the SDK's configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("aws: no region: give --backend-opt region=REGION (or set AWS_REGION, or a region in ~/.aws/config)")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = cfg.Credentials.Retrieve(cctx)
	cancel()
	if err != nil {
		return nil, &CredentialsError{Err: err}
	}
	c := &clients{region: cfg.Region}
	c.ec2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if b.cfg.EC2Endpoint != "" {
			o.BaseEndpoint = aws.String(b.cfg.EC2Endpoint)
		}
	})
	c.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if b.cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(b.cfg.S3Endpoint)
			o.UsePathStyle = true
		}
	})
	b.clients = c
	return c, nil
}

// Verify implements hypervisor.Backend: credentials, the region, and that
// EC2 answers.
func (b *Backend) Verify(ctx context.Context, a arch.Arch) error {
	if _, err := b.Platform(a); err != nil {
		return err
	}
	c, err := b.connect(ctx)
	if err != nil {
		return err
	}
	if _, err := c.ec2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{RegionNames: []string{c.region}}); err != nil {
		return fmt.Errorf("aws: EC2 in %s does not answer: %w", c.region, err)
	}
	return nil
}

// Version implements hypervisor.Backend.
func (b *Backend) Version(ctx context.Context, a arch.Arch) (string, error) {
	it := b.instanceType(a)
	region := b.cfg.Region
	if b.clients != nil {
		region = b.clients.region
	}
	return fmt.Sprintf("ec2 %s %s", region, it), nil
}

func (b *Backend) instanceType(a arch.Arch) string {
	if b.cfg.InstanceType != "" {
		return b.cfg.InstanceType
	}
	if a.Name == "aarch64" {
		return "t4g.micro"
	}
	return "t3.micro"
}

// Machine is the one machine type of the platform: a Nitro instance.
const Machine = "nitro"

// Platform implements hypervisor.Backend. On Nitro instances the kernel
// console is the serial port ttyS0 at 115200 baud, which GetConsoleOutput
// shows (kitinit's events share it: there is no second port), the NIC is
// ENA (a module in Debian's cloud kernel) and the EBS root volume is NVMe
// (built in; kitinit runs from the initramfs and does not mount it
// anyway). EC2 has no fw_cfg: a disk boot's per-boot files (SSH keys) are
// the instance's user data, which kitinit reads over IMDSv2.
func (b *Backend) Platform(a arch.Arch) (platform.Platform, error) {
	if _, err := awsArch(a); err != nil {
		return platform.Platform{}, err
	}
	hw := platform.Hardware{
		Console:    "ttyS0,115200n8",
		NICModules: []string{"ena"},
		DiskSeed:   initproto.SeedAWS,
		// As cloud images do: the timer check fails on busy hosts.
		KernelArgs: []string{"no_timer_check", "nosoftlockup"},
	}
	if b.cfg.EmulatedNIC == "virtio" {
		hw.NICModules = append(hw.NICModules, "virtio_pci", "virtio_net")
	}
	return platform.Platform{
		Name: Name, Arch: a, DefaultMachine: Machine,
		Machines: map[string]platform.Hardware{Machine: hw},
		// No static layout: kitinit asks the VPC's DHCP server (under
		// the fake EC2, QEMU's).
		Network: platform.Network{},
	}, nil
}

func awsArch(a arch.Arch) (string, error) {
	switch a.Name {
	case "x86_64":
		return "x86_64", nil
	case "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("AWS has no %s instances (it has x86_64 and aarch64)", a.Name)
}
