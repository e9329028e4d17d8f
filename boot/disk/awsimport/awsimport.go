// Package awsimport describes a raw disk image for import into AWS as an
// AMI: the disk file and its checksum, and the parameters of the two EC2
// calls that make an AMI of it, ImportSnapshot (from the disk uploaded to
// S3) and RegisterImage (from the snapshot). The parameters carry EC2's
// own field names, so the two objects can be given to the AWS CLI as
// --cli-input-json once the blanks are filled (the S3 bucket the disk was
// uploaded to, the snapshot ID the import returned); kitrun's AWS backend
// reads the same manifest.
package awsimport

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/kitrun/kitrun/boot/arch"
)

// Manifest is what aws.json holds.
type Manifest struct {
	// Disk is the raw image to upload.
	Disk Disk `json:"disk"`
	// ImportSnapshot is the input of EC2's ImportSnapshot.
	ImportSnapshot ImportSnapshotInput `json:"importSnapshot"`
	// RegisterImage is the input of EC2's RegisterImage.
	RegisterImage RegisterImageInput `json:"registerImage"`
}

// Disk is the raw disk image.
type Disk struct {
	// File is its file name, in the manifest's directory.
	File string `json:"file"`
	// Format is "raw".
	Format string `json:"format"`
	Size   int64  `json:"size"`
	// SHA256 is the hex SHA-256 of the file, to check an upload against.
	SHA256 string `json:"sha256"`
}

// ImportSnapshotInput holds ImportSnapshot's parameters.
type ImportSnapshotInput struct {
	Description   string        `json:"Description"`
	DiskContainer DiskContainer `json:"DiskContainer"`
}

// DiskContainer says where the uploaded disk is and what it is.
type DiskContainer struct {
	Description string `json:"Description"`
	// Format is "RAW".
	Format     string     `json:"Format"`
	UserBucket UserBucket `json:"UserBucket"`
}

// UserBucket is the disk's S3 location. S3Key is the key the manifest
// suggests (the file's name); S3Bucket is left for the uploader to fill.
type UserBucket struct {
	S3Bucket string `json:"S3Bucket,omitempty"`
	S3Key    string `json:"S3Key"`
}

// RegisterImageInput holds RegisterImage's parameters.
type RegisterImageInput struct {
	Name        string `json:"Name"`
	Description string `json:"Description"`
	// Architecture is AWS's name: "x86_64" or "arm64".
	Architecture string `json:"Architecture"`
	// BootMode is "uefi": the disk boots through its EFI system partition.
	BootMode string `json:"BootMode"`
	// EnaSupport: the guest has the Elastic Network Adapter's driver;
	// current (Nitro) instance types require it.
	EnaSupport         bool   `json:"EnaSupport"`
	RootDeviceName     string `json:"RootDeviceName"`
	VirtualizationType string `json:"VirtualizationType"`
	// ImdsSupport "v2.0" makes instances require IMDSv2 tokens.
	ImdsSupport         string               `json:"ImdsSupport"`
	BlockDeviceMappings []BlockDeviceMapping `json:"BlockDeviceMappings"`
}

// BlockDeviceMapping attaches the imported snapshot as the root volume.
type BlockDeviceMapping struct {
	DeviceName string `json:"DeviceName"`
	Ebs        EBS    `json:"Ebs"`
}

// EBS describes the root volume. SnapshotId is left for the importer to
// fill with what ImportSnapshot returned.
type EBS struct {
	SnapshotId          string `json:"SnapshotId,omitempty"`
	VolumeSize          int64  `json:"VolumeSize"` // GiB
	VolumeType          string `json:"VolumeType"`
	DeleteOnTermination bool   `json:"DeleteOnTermination"`
}

// rootDevice is the root device name of AWS's Linux AMIs.
const rootDevice = "/dev/xvda"

// Architecture is AWS's name for a kitrun architecture.
func Architecture(a arch.Arch) (string, error) {
	switch a.Name {
	case "x86_64":
		return "x86_64", nil
	case "aarch64":
		return "arm64", nil
	}
	return "", fmt.Errorf("AWS has no %s instances (it has x86_64 and aarch64, which it calls arm64)", a.Name)
}

// New describes the raw disk file diskFile (a name in the manifest's
// directory) of size bytes and SHA-256 sha256Hex, an image named name for
// arch a.
func New(name string, a arch.Arch, diskFile string, size int64, sha256Hex string) (*Manifest, error) {
	awsArch, err := Architecture(a)
	if err != nil {
		return nil, err
	}
	if len(sha256Hex) != 64 {
		return nil, fmt.Errorf("SHA-256 %q is not 64 hex digits", sha256Hex)
	}
	desc := fmt.Sprintf("kitrun image %s (%s, sha256 %s)", name, a.Name, sha256Hex[:12])
	const gib = 1 << 30
	return &Manifest{
		Disk: Disk{File: diskFile, Format: "raw", Size: size, SHA256: sha256Hex},
		ImportSnapshot: ImportSnapshotInput{
			Description: desc,
			DiskContainer: DiskContainer{
				Description: desc,
				Format:      "RAW",
				UserBucket:  UserBucket{S3Key: diskFile},
			},
		},
		RegisterImage: RegisterImageInput{
			// AMI names are unique per account and region: the content
			// digest keeps two builds of different content apart.
			Name:                amiName(name + "-" + sha256Hex[:12]),
			Description:         desc,
			Architecture:        awsArch,
			BootMode:            "uefi",
			EnaSupport:          true,
			RootDeviceName:      rootDevice,
			VirtualizationType:  "hvm",
			ImdsSupport:         "v2.0",
			BlockDeviceMappings: []BlockDeviceMapping{{DeviceName: rootDevice, Ebs: EBS{VolumeSize: max(1, (size+gib-1)/gib), VolumeType: "gp3", DeleteOnTermination: true}}},
		},
	}, nil
}

// amiName makes s a valid AMI name: 3 to 128 characters among letters,
// digits and ()[] ./-'@_ .
func amiName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("()[] ./-'@_", r):
			return r
		}
		return '-'
	}, s)
	if len(s) > 128 {
		s = s[len(s)-128:] // keep the digest at the end
	}
	for len(s) < 3 {
		s += "_"
	}
	return s
}

// Marshal returns the manifest as aws.json holds it.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Read reads and checks a manifest.
func Read(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case m.Disk.File == "" || strings.ContainsAny(m.Disk.File, `/\`):
		return nil, fmt.Errorf("%s: disk.file %q must be a file name in the manifest's directory", path, m.Disk.File)
	case m.Disk.Size <= 0 || len(m.Disk.SHA256) != 64:
		return nil, fmt.Errorf("%s: disk.size and disk.sha256 (64 hex digits) are required", path)
	case m.RegisterImage.Architecture != "x86_64" && m.RegisterImage.Architecture != "arm64":
		return nil, fmt.Errorf("%s: registerImage.Architecture %q is not x86_64 or arm64", path, m.RegisterImage.Architecture)
	}
	return &m, nil
}
