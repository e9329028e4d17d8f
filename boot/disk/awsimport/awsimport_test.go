package awsimport_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/disk/awsimport"
)

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestManifestRoundTrip(t *testing.T) {
	a, err := arch.Lookup("aarch64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := awsimport.New("my image: v1 *", a, "efi.raw", 3<<30+1, sha)
	if err != nil {
		t.Fatal(err)
	}
	r := m.RegisterImage
	if r.Name != "my image- v1 --0123456789ab" {
		t.Errorf("AMI name %q: characters AWS refuses must become '-', the digest must follow", r.Name)
	}
	if r.Architecture != "arm64" || r.BlockDeviceMappings[0].Ebs.VolumeSize != 4 {
		t.Errorf("arm64 and a 4 GiB volume for 3 GiB + 1 byte; got %s, %d", r.Architecture, r.BlockDeviceMappings[0].Ebs.VolumeSize)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"DiskContainer"`, `"UserBucket"`, `"S3Key": "efi.raw"`, `"BootMode": "uefi"`, `"EnaSupport": true`, `"RootDeviceName": "/dev/xvda"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("aws.json lacks %s:\n%s", key, b)
		}
	}
	p := filepath.Join(t.TempDir(), "aws.json")
	os.WriteFile(p, b, 0o644)
	back, err := awsimport.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Disk != m.Disk || back.RegisterImage.Name != r.Name {
		t.Errorf("read back %+v, wrote %+v", back, m)
	}
}

func TestBadManifests(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"disk": {"file": "../x.raw", "size": 512, "sha256": "` + sha + `"}}`, "file name"},
		{`{"disk": {"file": "x.raw", "size": 0, "sha256": "` + sha + `"}}`, "required"},
		{`{"disk": {"file": "x.raw", "size": 512, "sha256": "` + sha + `"}, "registerImage": {"Architecture": "i386"}}`, "x86_64 or arm64"},
		{`{"disk": `, "unexpected end"},
	} {
		p := filepath.Join(t.TempDir(), "aws.json")
		os.WriteFile(p, []byte(tc.json), 0o644)
		if _, err := awsimport.Read(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.json, err, tc.want)
		}
	}
	if _, err := awsimport.New("x", arch.Arch{Name: "riscv64"}, "efi.raw", 512, sha); err == nil || !strings.Contains(err.Error(), "no riscv64") {
		t.Errorf("riscv64: %v", err)
	}
}
