package gcp_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/cloud"
	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"
	"github.com/kitrun/kitrun/hypervisor/gcp"
	"github.com/kitrun/kitrun/hypervisor/gcp/gcpfake"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

var (
	archiveOnce sync.Once
	archiveDir  string
	archiveSum  string
	archiveErr  error
)

// diskImage is an image whose gcp disk is a 1 GiB disk.raw (random first
// 64 KiB, zeros after) in a tar.gz: enough for the control plane, which
// never boots it here (placeholder instances). It is made once per test
// process.
func diskImage(t testing.TB) *image.Image {
	t.Helper()
	archiveOnce.Do(func() {
		archiveDir, archiveErr = os.MkdirTemp("", "gcpfault")
		if archiveErr != nil {
			return
		}
		path := filepath.Join(archiveDir, "gcp.tar.gz")
		out, err := os.Create(path)
		if err != nil {
			archiveErr = err
			return
		}
		h := sha256.New()
		zw, _ := gzip.NewWriterLevel(io.MultiWriter(out, h), gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o644, Size: 1 << 30, Format: tar.FormatGNU, ModTime: time.Unix(0, 0)})
		head := make([]byte, 64<<10)
		rand.Read(head)
		tw.Write(head)
		zeros := make([]byte, 1<<20)
		for n := int64(len(head)); n < 1<<30; {
			k := min(int64(len(zeros)), 1<<30-n)
			tw.Write(zeros[:k])
			n += k
		}
		tw.Close()
		zw.Close()
		archiveErr = out.Close()
		archiveSum = hex.EncodeToString(h.Sum(nil))
	})
	if archiveErr != nil {
		t.Fatal(archiveErr)
	}
	a, _ := arch.Lookup("x86_64")
	return &image.Image{Dir: archiveDir, Arch: a, Manifest: image.Manifest{Name: "fault", Network: image.NetworkAuto,
		Disks: map[string]image.Disk{"gcp": {File: "gcp.tar.gz", Machine: gcp.Machine, Blob: image.Blob{SHA256: archiveSum}}}}}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if archiveDir != "" {
		os.RemoveAll(archiveDir)
	}
	os.Exit(code)
}

func backend(t testing.TB, f *gcpfake.Fake, extra ...string) *gcp.Backend {
	t.Helper()
	return hypervisortest.NewCloudBackend(t, gcp.New, f.BackendOptions(), extra...)
}

func start(t *testing.T, b *gcp.Backend, img *image.Image, publish ...int) hypervisor.Machine {
	t.Helper()
	return hypervisortest.Start(t, b, img, gcp.Format, publish...)
}

// TestPlaceholderLifecycle: upload once, two machines on one image (one
// with a published port: its firewall rule), every resource labelled,
// the power button, and nothing transient left.
func TestPlaceholderLifecycle(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f)
	img := diskImage(t)
	m1 := start(t, b, img, 8080)
	m2 := start(t, b, img)
	if n := f.Calls("images.insert"); n != 1 {
		t.Errorf("images.insert called %d times for two machines, want 1", n)
	}
	if !strings.Contains(m2.Info().AccelReason, "reused") {
		t.Errorf("second machine: %s", m2.Info().AccelReason)
	}
	l := f.Labels("instance", m1.Info().ID)
	if l[gcp.LabelRun] == "" || l[gcp.LabelExpires] == "" {
		t.Errorf("instance labels %v", l)
	}
	if ep, err := m1.Endpoint(8080); err != nil || !cloudfake.IsPublicAddr(ep) {
		t.Errorf("Endpoint = %q, %v", ep, err)
	}
	if r := strings.Join(f.Resources(), " "); !strings.Contains(r, "firewall "+m1.Info().ID) {
		t.Errorf("no firewall rule for the published port: %s", r)
	}
	for _, m := range []hypervisor.Machine{m1, m2} {
		if err := m.PowerButton(context.Background()); err != nil {
			t.Fatal(err)
		}
		hypervisortest.WaitGone(t, m, 30*time.Second)
		if err := m.Err(); err != nil {
			t.Errorf("Err after the power button: %v", err)
		}
	}
	if r := f.Transient(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
	hypervisortest.SweepRun(t, b, f.Resources)
}

func TestMissingCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("CLOUDSDK_CONFIG", dir)
	t.Setenv("HOME", dir)
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1") // no metadata server
	b, err := gcp.New(hypervisor.Options{"project": "p", "zone": "z"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = b.Verify(ctx, diskImage(t).Arch)
	var ce *gcp.CredentialsError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Application Default Credentials") {
		t.Fatalf("Verify without credentials: %v", err)
	}
	t.Log(err)
}

func TestRateLimitRetried(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f)
	f.Throttle("instances.insert", 3)
	f.Throttle("images.list", 2)
	f.Throttle("instances.get", 2)
	m := start(t, b, diskImage(t))
	if n := f.Calls("instances.insert"); n != 4 {
		t.Errorf("instances.insert called %d times, want 3 throttled and 1 accepted", n)
	}
	if n := len(f.Instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	m.ForceOff(context.Background())
	// Throttled past max-attempts: a clear failure, no instance.
	b2 := backend(t, f, "max-attempts=2")
	f.Throttle("instances.insert", 5)
	_, err := b2.Start(context.Background(), hypervisor.Spec{Image: diskImage(t), Format: gcp.Format})
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("Start throttled past max-attempts: %v", err)
	}
	if r := f.Transient(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}

func TestCapacityAndQuotaErrors(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f)
	img := diskImage(t)
	for _, code := range []string{"ZONE_RESOURCE_POOL_EXHAUSTED", "QUOTA_EXCEEDED"} {
		f.FailOp("instances.insert", code)
		_, err := b.Start(context.Background(), hypervisor.Spec{Image: img, Format: gcp.Format})
		var ce *gcp.CapacityError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("%s: Start = %v", code, err)
		}
		want := "another zone"
		if code == "QUOTA_EXCEEDED" {
			want = "quota"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v lacks %q", code, err, want)
		}
		t.Log(err)
	}
	if r := f.Transient(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}

func TestTeardownFailureReported(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f)
	v, err := vm.Boot(context.Background(), b, diskImage(t), vm.Options{Format: gcp.Format,
		Publish: []hypervisor.PortForward{{HostAddr: "127.0.0.1", GuestPort: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	f.Fail("firewalls.delete", 403)
	err = v.Shutdown(context.Background(), 20*time.Second)
	var ce *hypervisor.CleanupError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "kitrun cloud sweep") || !strings.Contains(err.Error(), "firewall rule "+v.Machine.Info().ID) {
		t.Fatalf("Shutdown = %v; want the cleanup failure, naming the firewall rule and the sweep", err)
	}
	t.Log(err)
	if left := f.Transient(); len(left) != 1 || !strings.HasPrefix(left[0], "firewall ") {
		t.Fatalf("left: %v, want the firewall rule", left)
	}
	f.Fail("firewalls.delete", 0)
	hypervisortest.SweepRun(t, b, f.Resources)
}

func TestMaxInstancesAndLifetime(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	img := diskImage(t)
	b := backend(t, f, "max-instances=1", "lifetime=2s")
	m := start(t, b, img)
	_, err := b.Start(context.Background(), hypervisor.Spec{Image: img, Format: gcp.Format})
	var qe *gcp.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("a second instance beyond max-instances=1: %v", err)
	}
	if exp := f.Labels("instance", m.Info().ID)[gcp.LabelExpires]; exp == "" {
		t.Error("the instance carries no expiry for sweep")
	}
	hypervisortest.WaitGone(t, m, 20*time.Second)
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Errorf("Err = %v, want the lifetime named", err)
	}
	if r := f.Transient(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}

func TestKeepImageFalse(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f, "keep-image=false")
	m := start(t, b, diskImage(t))
	m.ForceOff(context.Background())
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left with keep-image=false: %v", r)
	}
}

// TestConsoleDropMarked: when getSerialPortOutput no longer holds the
// offset asked for (its buffer dropped the oldest output), the stream
// says so where the bytes were lost, and goes on from what is held.
func TestConsoleDropMarked(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{SerialBuffer: 16})
	b := backend(t, f)
	m := start(t, b, diskImage(t))
	// Read until the placeholder's line has come: an instance deleted
	// before any poll saw it leaves no output to mark (the platform's
	// console goes with the instance), which is not what this tests.
	var out []byte
	buf := make([]byte, 4096)
	deadline := time.AfterFunc(time.Minute, func() { m.ForceOff(context.Background()) })
	for !strings.HasSuffix(string(out), "(no QEMU)\r\n") {
		n, err := m.Console().Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("console ended before the placeholder's line (%q): %v", out, err)
		}
	}
	deadline.Stop()
	m.ForceOff(context.Background())
	rest, err := io.ReadAll(m.Console())
	if err != nil {
		t.Fatal(err)
	}
	s := string(append(out, rest...))
	if !strings.Contains(s, cloud.StreamGapMarker) || !strings.HasSuffix(s, "(no QEMU)\r\n") || strings.Contains(s, "gcpfake: placeholder") {
		t.Errorf("console %q: want the gap marked, then the last 16 bytes", s)
	}
}

// TestSweepByExpiry: what a killed run leaves (a running instance, its
// firewall rule, the image, a stale upload) is kept by sweep until its
// labels say it expired: the instance and its rule after the lifetime,
// the upload after an hour, the image after image-ttl.
func TestSweepByExpiry(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f)
	m := start(t, b, diskImage(t), 8080)
	f.GCS.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: gcpfake.Bucket,
		Name: gcp.ObjectPrefix + "stale.tar.gz", Metadata: map[string]string{"kitrun-run": cloud.RunID()}}, Content: []byte("x")})
	sweep := func(after time.Duration) *cloud.SweepReport {
		t.Helper()
		rep, err := b.Sweep(context.Background(), cloud.SweepOptions{Now: time.Now().Add(after)})
		if err != nil || rep.Err() != nil {
			t.Fatalf("sweep: %v %v", err, rep.Err())
		}
		return rep
	}
	if rep := sweep(0); len(rep.Removed) != 0 || len(rep.Kept) != 4 {
		t.Fatalf("a sweep now removed %v, kept %v; want the 4 resources kept", rep.Removed, rep.Kept)
	}
	rep := sweep(2 * time.Hour)
	var kinds []string
	for _, r := range rep.Removed {
		kinds = append(kinds, r.Kind)
	}
	if strings.Join(kinds, ",") != "instance,firewall,object" {
		t.Errorf("two hours on, sweep removed %v; want the instance, its rule and the upload", rep.Removed)
	}
	hypervisortest.WaitGone(t, m, 30*time.Second)
	if rep := sweep(25 * time.Hour); len(rep.Removed) != 1 || rep.Removed[0].Kind != "image" {
		t.Errorf("a day on, sweep removed %v; want the image", rep.Removed)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}

// TestImageCreationFails: images.insert whose operation fails leaves
// neither the image nor the upload, and says why.
func TestImageCreationFails(t *testing.T) {
	f := gcpfake.Start(t, gcpfake.Options{})
	b := backend(t, f)
	f.FailOp("images.insert", "INVALID_IMAGE_FILE")
	_, err := b.Start(context.Background(), hypervisor.Spec{Image: diskImage(t), Format: gcp.Format})
	if err == nil || !strings.Contains(err.Error(), "INVALID_IMAGE_FILE") || !strings.Contains(err.Error(), "creating image") {
		t.Fatalf("Start = %v", err)
	}
	t.Log(err)
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left: %v", r)
	}
}
