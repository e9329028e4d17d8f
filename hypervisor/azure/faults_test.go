package azure_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/azure"
	"github.com/kitrun/kitrun/hypervisor/azure/azurefake"
	"github.com/kitrun/kitrun/hypervisor/cloud"
	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
)

// diskImage is an image whose vhd disk is a fake fixed VHD of 9 MiB: 1 MiB
// of random bytes, zeros, 4 KiB of random bytes at 6 MiB, zeros and a
// footer. Enough for the control plane, which never boots it here
// (placeholder VMs).
func diskImage(t testing.TB, dir string) *image.Image {
	t.Helper()
	a, _ := arch.Lookup("x86_64")
	b := make([]byte, 9<<20+512)
	rand.Read(b[:1<<20])
	rand.Read(b[6<<20 : 6<<20+4096])
	copy(b[9<<20:], "conectix")
	if err := os.WriteFile(filepath.Join(dir, "disk.vhd"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	d := image.Disk{File: "disk.vhd", Machine: azure.MachineGen2QEMU}
	d.Size, d.SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
	return &image.Image{Dir: dir, Arch: a, Manifest: image.Manifest{Name: "fault", Disks: map[string]image.Disk{"vhd": d}}}
}

func backend(t testing.TB, f *azurefake.Fake, extra ...string) *azure.Backend {
	t.Helper()
	return hypervisortest.NewCloudBackend(t, azure.New, f.BackendOptions(), extra...)
}

func start(t *testing.T, b *azure.Backend, img *image.Image, publish ...int) (hypervisor.Machine, error) {
	t.Helper()
	return hypervisortest.TryStart(t, b, img, azure.Format, publish...)
}

func waitDone(t *testing.T, m hypervisor.Machine) {
	t.Helper()
	hypervisortest.WaitGone(t, m, time.Minute)
}

// TestControlPlane: a placeholder VM's whole life without QEMU: the
// sparse upload (only non-zero pages), its resources, the power button,
// the teardown, and the image disk reused by a second start.
func TestControlPlane(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	b := backend(t, f)
	img := diskImage(t, t.TempDir())
	m, err := start(t, b, img, 8080)
	if err != nil {
		t.Fatal(err)
	}
	if blobs, pages := f.Uploads(); blobs != 1 || pages != 3 {
		t.Errorf("uploaded %d blobs in %d Put Page calls; want 1 in 3 (the zero ranges skipped; the footer is one)", blobs, pages)
	}
	ep, err := m.Endpoint(8080)
	if err != nil || !cloudfake.IsPublicAddr(ep) {
		t.Errorf("endpoint %q, %v", ep, err)
	}
	if err := m.PowerButton(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	if err := m.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
	if n := f.Calls("GET operations"); n < 2 {
		t.Errorf("the VM's deletion (202, Azure-AsyncOperation) was polled %d times, want it followed to its end", n)
	}
	m2, err := start(t, b, img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m2.Info().AccelReason, "reused") {
		t.Errorf("second start: %s", m2.Info().AccelReason)
	}
	if blobs, _ := f.Uploads(); blobs != 1 {
		t.Errorf("uploaded %d times", blobs)
	}
	if err := m2.ForceOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m2.Err(); err == nil || !strings.Contains(err.Error(), "forced off") {
		t.Errorf("Err after ForceOff: %v", err)
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}

// TestMissingCredentials: without a fake credential and with nothing for
// DefaultAzureCredential to find, Start fails clearly, calling nothing.
func TestMissingCredentials(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	f.Env(t)
	t.Setenv("PATH", t.TempDir()) // no az, azd or pwsh
	b := backend(t, f, "fake-credential=false")
	_, err := start(t, b, diskImage(t, t.TempDir()))
	var ce *azure.CredentialsError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "DefaultAzureCredential") {
		t.Fatalf("err = %v", err)
	}
	if n := f.Calls("GET virtualMachines"); n != 0 {
		t.Errorf("%d calls without credentials", n)
	}
}

// TestThrottling: 429s with Retry-After on the VM's creation are retried
// by the SDK: one VM.
func TestThrottling(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	b := backend(t, f)
	f.Throttle("PUT virtualMachines", 2)
	m, err := start(t, b, diskImage(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Calls("PUT virtualMachines"); n != 3 {
		t.Errorf("%d PUTs of the VM, want 3 (two throttled)", n)
	}
	m.ForceOff(context.Background())
}

// TestSizeNotAvailable: a size the location lacks, or one refused at
// creation (SkuNotAvailable), and a quota refusal: clear errors, nothing
// left.
func TestSizeNotAvailable(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	img := diskImage(t, t.TempDir())
	_, err := start(t, backend(t, f, "vm-size=Standard_M416ms_v2"), img)
	var se *azure.SizeError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "vm-size=") {
		t.Errorf("err = %v", err)
	}
	f.Fail("PUT virtualMachines", 409, "SkuNotAvailable", 1)
	if _, err := start(t, backend(t, f), img); err == nil || !strings.Contains(err.Error(), "SkuNotAvailable") || !strings.Contains(err.Error(), "another VM size") {
		t.Errorf("err = %v", err)
	}
	f.Fail("PUT virtualMachines", 409, "OperationNotAllowed", 1)
	if _, err := start(t, backend(t, f), img); err == nil || !strings.Contains(err.Error(), "quota") {
		t.Errorf("err = %v", err)
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}

// TestCostGuard: max-instances counts kitrun's VMs in the resource group.
func TestCostGuard(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	b := backend(t, f, "max-instances=1")
	img := diskImage(t, t.TempDir())
	m, err := start(t, b, img)
	if err != nil {
		t.Fatal(err)
	}
	_, err = start(t, b, img)
	var qe *azure.QuotaError
	if !errors.As(err, &qe) {
		t.Errorf("second start: %v", err)
	}
	m.ForceOff(context.Background())
}

// TestTeardownFails: a NIC that cannot be deleted is a CleanupError
// naming it; sweep removes it later.
func TestTeardownFails(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	b := backend(t, f)
	m, err := start(t, b, diskImage(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	f.Fail("DELETE networkInterfaces", 400, "NicInUse", 100)
	if err := m.PowerButton(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	var ce *hypervisor.CleanupError
	if !errors.As(m.Err(), &ce) || len(ce.Left) != 1 || !strings.HasPrefix(ce.Left[0], "NIC ") || ce.Ended != nil {
		t.Fatalf("Err = %v", m.Err())
	}
	f.Fail("DELETE networkInterfaces", 400, "NicInUse", 0)
	hypervisortest.SweepRun(t, b, f.Resources)
}

// TestSweepBlobs: an upload blob left by a killed kitrun (in Azurite) is
// kept while it is younger than UploadTTL, swept once it is older (the
// sweep's clock moved on: Azurite sets Last-Modified itself), and only
// the run asked for.
func TestSweepBlobs(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	b := backend(t, f)
	f.LeaveBlob(t, azure.BlobPrefix+"0123456789abcdef-20261203T000000Z-host-1-deadbeef.vhd", 1<<20)
	f.LeaveBlob(t, azure.BlobPrefix+"0123456789abcdef-20261203T000001Z-host-2-deadbeef.vhd", 1<<20)
	rep, err := b.Sweep(context.Background(), cloud.SweepOptions{})
	if err != nil || rep.Err() != nil {
		t.Fatalf("sweep: %v %v", err, rep.Err())
	}
	if len(rep.Removed) != 0 || len(rep.Kept) != 2 {
		t.Errorf("fresh uploads: removed %v, kept %v; want both kept", rep.Removed, rep.Kept)
	}
	rep, err = b.Sweep(context.Background(), cloud.SweepOptions{Now: time.Now().Add(azure.UploadTTL + time.Minute), Run: "20261203T000000Z-host-1-deadbeef"})
	if err != nil || rep.Err() != nil {
		t.Fatalf("sweep: %v %v", err, rep.Err())
	}
	if len(rep.Removed) != 1 || !strings.Contains(rep.Removed[0].ID, "host-1") || len(rep.Kept) != 1 {
		t.Errorf("removed %v, kept %v", rep.Removed, rep.Kept)
	}
	if r := f.Resources(); len(r) != 1 || !strings.Contains(r[0], "host-2") {
		t.Errorf("left: %v", r)
	}
}

// TestLifetimeAndKeepImage: a VM past its lifetime is stopped and deleted
// by the process that started it; with keep-image=false the image disk
// goes with this process's last machine on it.
func TestLifetimeAndKeepImage(t *testing.T) {
	f := azurefake.Start(t, azurefake.Options{})
	b := backend(t, f, "lifetime=2s", "keep-image=false")
	m, err := start(t, b, diskImage(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Errorf("Err = %v, want the lifetime named", err)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}
