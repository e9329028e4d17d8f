package aws_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/disk/awsimport"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/aws"
	"github.com/kitrun/kitrun/hypervisor/aws/awsfake"
	"github.com/kitrun/kitrun/hypervisor/cloud"
	"github.com/kitrun/kitrun/hypervisor/hypervisortest"
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/internal/childproc"
)

// diskImage is an image whose aws disk is size random bytes: enough for
// the control plane, which never boots it here (placeholder instances).
func diskImage(t testing.TB, dir string, size int) *image.Image {
	t.Helper()
	a, _ := arch.Lookup("x86_64")
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	m, err := awsimport.New("fault", a, "disk.raw", int64(size), hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := m.Marshal()
	if err := os.WriteFile(filepath.Join(dir, "aws.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	return &image.Image{Dir: dir, Arch: a, Manifest: image.Manifest{Name: "fault",
		Disks: map[string]image.Disk{"aws": {File: "aws.json", Machine: aws.Machine}}}}
}

func backend(t testing.TB, f *awsfake.Fake, extra ...string) *aws.Backend {
	t.Helper()
	return hypervisortest.NewCloudBackend(t, aws.New, f.BackendOptions(), extra...)
}

func start(t *testing.T, b *aws.Backend, img *image.Image, publish ...int) hypervisor.Machine {
	t.Helper()
	return hypervisortest.Start(t, b, img, aws.Format, publish...)
}

// resources lists what the fake holds, without the images and snapshots
// that are kept for reuse.
func transient(f *awsfake.Fake) []string {
	var out []string
	for _, r := range f.Resources() {
		if !strings.HasPrefix(r, "image ") && !strings.HasPrefix(r, "snapshot ") {
			out = append(out, r)
		}
	}
	return out
}

func TestMissingCredentials(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	b := backend(t, f)
	_, err := b.Start(context.Background(), hypervisor.Spec{Image: diskImage(t, t.TempDir(), 4096), Format: aws.Format})
	var ce *aws.CredentialsError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("want a clear credentials error, got %v", err)
	}
	if f.Calls("RunInstances")+f.Puts() != 0 {
		t.Error("nothing may be called without credentials")
	}
	t.Log(err)
}

func TestRegionWithoutInstanceType(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{InstanceTypes: []string{"t3.micro"}})
	f.Env(t)
	b := backend(t, f, "instance-type=c7i.large")
	_, err := b.Start(context.Background(), hypervisor.Spec{Image: diskImage(t, t.TempDir(), 4096), Format: aws.Format})
	var ite *aws.InstanceTypeError
	if !errors.As(err, &ite) || !strings.Contains(err.Error(), "c7i.large") || !strings.Contains(err.Error(), f.Region) {
		t.Fatalf("want an error naming the type and region, got %v", err)
	}
	if f.Puts() != 0 || f.Calls("RunInstances") != 0 {
		t.Error("the type is checked before anything is uploaded or launched")
	}
	t.Log(err)
}

// TestThrottlingRetried: RequestLimitExceeded on the calls of a start is
// retried with backoff by the SDK's retryer; a retried RunInstances
// launches one instance (its client token).
func TestThrottlingRetried(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	f.Throttle("DescribeImages", 2)
	f.Throttle("RunInstances", 3)
	f.Throttle("DescribeInstances", 2)
	b := backend(t, f)
	m := start(t, b, diskImage(t, t.TempDir(), 64<<10))
	if got := f.Calls("RunInstances"); got != 4 {
		t.Errorf("RunInstances called %d times, want 4 (3 throttled)", got)
	}
	if n := len(f.Instances()); n != 1 {
		t.Errorf("%d instances launched, want 1", n)
	}
	if err := m.ForceOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "terminated by the host") {
		t.Errorf("Err after ForceOff = %v", err)
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left after the machine: %v", r)
	}
}

// TestInterruptedUpload: an upload cut midway is retried from the start
// (one atomic PUT: no parts, no partial object); one that keeps failing
// fails the start and leaves nothing; the next start uploads cleanly.
func TestInterruptedUpload(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	img := diskImage(t, t.TempDir(), 1<<20)
	b := backend(t, f, "max-attempts=3")

	f.CutUploads(100)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, err := b.Start(ctx, hypervisor.Spec{Image: img, Format: aws.Format})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "uploading") {
		t.Fatalf("an upload that never completes must fail the start: %v", err)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("a failed upload left %v", r)
	}
	if f.Puts() != 3 {
		t.Errorf("%d PUTs, want 3 (max-attempts)", f.Puts())
	}

	f.CutUploads(1)
	m := start(t, b, img)
	if f.Puts() != 5 {
		t.Errorf("%d PUTs in all, want 5 (one more cut, then the whole file)", f.Puts())
	}
	if f.Calls("ImportSnapshot") != 1 {
		t.Errorf("ImportSnapshot called %d times", f.Calls("ImportSnapshot"))
	}
	for _, r := range f.Resources() {
		if strings.HasPrefix(r, "object ") {
			t.Errorf("the upload outlived its import: %s", r)
		}
	}
	m.ForceOff(context.Background())
}

// TestTeardownFailureReported: a machine whose instance cannot be deleted
// says so (CleanupError, naming what is left and the sweep), vm's Shutdown
// returns it, and a sweep removes it later.
func TestTeardownFailureReported(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	b := backend(t, f)
	img := diskImage(t, t.TempDir(), 64<<10)
	v, err := vm.Boot(context.Background(), b, img, vm.Options{Format: aws.Format})
	if err != nil {
		t.Fatal(err)
	}
	f.Fail("TerminateInstances", "UnauthorizedOperation")
	// The placeholder never reports all-ready: shut it down as a run
	// that gave up would.
	err = v.Shutdown(context.Background(), 20*time.Second)
	var ce *hypervisor.CleanupError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "kitrun cloud sweep") || !strings.Contains(err.Error(), v.Machine.Info().ID) {
		t.Fatalf("Shutdown = %v; want the cleanup failure, naming the instance and the sweep", err)
	}
	t.Log(err)
	left := transient(f)
	if len(left) != 1 || !strings.Contains(left[0], "stopped") {
		t.Fatalf("left: %v, want the stopped instance", left)
	}
	f.Fail("TerminateInstances", "")
	hypervisortest.SweepRun(t, b, f.Resources)
}

func TestMaxInstancesAndLifetime(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	img := diskImage(t, t.TempDir(), 64<<10)
	b := backend(t, f, "max-instances=1", "lifetime=2s")
	m := start(t, b, img)
	_, err := b.Start(context.Background(), hypervisor.Spec{Image: img, Format: aws.Format})
	var qe *aws.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("a second instance beyond max-instances=1: %v", err)
	}
	if n := len(f.Instances()); n != 1 {
		t.Errorf("%d instances", n)
	}
	// The lifetime ends the first.
	hypervisortest.WaitGone(t, m, 20*time.Second)
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Errorf("Err = %v, want the lifetime named", err)
	}
	if exp := f.Tags(m.Info().ID)[cloud.TagExpires]; exp == "" {
		t.Error("the instance carries no expiry for sweep")
	}
}

// TestKilledRunSwept: a kitrun process killed (SIGKILL) while its instance
// runs leaves the instance (with its security group) and the image; sweep
// removes the instance and group once their lifetime has passed or with
// --older-than, and the image once it is unused past its TTL.
func TestKilledRunSwept(t *testing.T) {
	if os.Getenv("AWSFAKE_CHILD") != "" {
		return
	}
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	dir := t.TempDir()
	diskImage(t, dir, 64<<10)
	opts := []string{}
	for k, v := range f.BackendOptions() {
		opts = append(opts, k+"="+v)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartAndHang$", "-test.v")
	cmd.Env = append(os.Environ(), "AWSFAKE_CHILD="+dir, "AWSFAKE_OPTS="+strings.Join(opts, "\x1f"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got string
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(got, "RUNNING ") && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(got, "RUNNING ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child did not start its instance:\n%s", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	before := f.Resources()
	kinds := strings.Join(before, "\n")
	for _, k := range []string{"instance ", "security-group ", "image ", "snapshot "} {
		if !strings.Contains(kinds, k) {
			t.Fatalf("after kill -9, no %s left? %v", k, before)
		}
	}
	b := backend(t, f)
	// Not due yet: nothing goes.
	rep, err := b.Sweep(context.Background(), cloud.SweepOptions{})
	if err != nil || len(rep.Removed) != 0 {
		t.Fatalf("a sweep before anything expired removed %v (%v)", rep.Removed, err)
	}
	// Older than the run: the instance goes first; its group is in use
	// until the instance is terminated, then the next sweep takes it.
	deadline = time.Now().Add(30 * time.Second)
	for {
		rep, err = b.Sweep(context.Background(), cloud.SweepOptions{OlderThan: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Resources()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after sweeping for 30s: %v (last report: %v)", f.Resources(), rep.Err())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestHelperStartAndHang is the child of TestKilledRunSwept: it starts a
// machine that publishes a port, says so, and waits to be killed.
func TestHelperStartAndHang(t *testing.T) {
	dir := os.Getenv("AWSFAKE_CHILD")
	if dir == "" {
		t.Skip("helper process")
	}
	o := hypervisor.Options{}
	for _, kv := range strings.Split(os.Getenv("AWSFAKE_OPTS"), "\x1f") {
		k, v, _ := strings.Cut(kv, "=")
		o[k] = v
	}
	b, err := aws.New(o)
	if err != nil {
		t.Fatal(err)
	}
	img := diskImage(t, dir, 64<<10) // the same bytes? no: rewritten; the digest is new
	m, err := b.Start(context.Background(), hypervisor.Spec{Image: img, Format: aws.Format,
		Publish: []hypervisor.PortForward{{GuestPort: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("RUNNING " + m.Info().ID + "\n")
	time.Sleep(time.Hour)
}

// TestKeepImageFalse: with keep-image=false the AMI and its snapshot go
// with the last machine of the process that uses them.
func TestKeepImageFalse(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	img := diskImage(t, t.TempDir(), 64<<10)
	b := backend(t, f, "keep-image=false")
	m1 := start(t, b, img)
	m2 := start(t, b, img)
	if f.Calls("ImportSnapshot") != 1 {
		t.Errorf("%d imports for two machines", f.Calls("ImportSnapshot"))
	}
	if err := m1.ForceOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := f.Resources(); len(r) != 3 { // m2's instance, the image, the snapshot
		t.Errorf("with one machine left: %v", r)
	}
	if err := m2.ForceOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := f.Resources(); len(r) != 0 {
		t.Errorf("left after the last machine: %v", r)
	}
}

// TestCapacityAndQuotaErrors: EC2 refusing a launch for capacity or quota
// is a clear error naming what to change, and leaves no instance (nor a
// security group) behind.
func TestCapacityAndQuotaErrors(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	f.Env(t)
	img := diskImage(t, t.TempDir(), 64<<10)
	b := backend(t, f)
	for _, code := range []string{"InsufficientInstanceCapacity", "VcpuLimitExceeded"} {
		f.Fail("RunInstances", code)
		_, err := b.Start(context.Background(), hypervisor.Spec{Image: img, Format: aws.Format,
			Publish: []hypervisor.PortForward{{GuestPort: 8080}}})
		if err == nil || !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), "another instance type") || (code == "VcpuLimitExceeded") != strings.Contains(err.Error(), "quota") {
			t.Errorf("%s: %v", code, err)
		}
		t.Log(err)
	}
	if r := transient(f); len(r) != 0 {
		t.Errorf("left after refused launches: %v", r)
	}
}
