//go:build linux

package disk_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
)

// noSpaceJob is what the parent hands the child process of TestNoSpace.
type noSpaceJob struct {
	Format                  string
	Base                    string // the base file a container is built from
	Mode                    string // "tmpfs" or "rlimit"
	Dir                     string
	Arch, Kernel, Initrd    string
	Cmdline                 string
	PackageDir, LoaderCache string
}

const noSpaceEnv = "KITRUN_TEST_NOSPACE_JOB"

// TestNoSpace builds each format onto a device too small for it: a 4 MiB
// tmpfs mounted in a user and mount namespace of a child process (a real
// ENOSPC, no root needed), or where user namespaces are off, under a 4 MiB
// RLIMIT_FSIZE (EFBIG). The build must fail with an error that says so and
// leave nothing in the directory. (raw-bios is iso-bios's builder.) The
// containers are built from a 12 MiB raw disk of random data.
func TestNoSpace(t *testing.T) {
	if job := os.Getenv(noSpaceEnv); job != "" {
		noSpaceChild(t, job)
		return
	}
	_, in := minimal(t, "x86_64")
	for _, format := range []string{"raw-efi", "iso-bios", "iso-efi"} {
		t.Run(format, func(t *testing.T) { noSpace(t, format, in, "") })
	}
	base := rawtest.Cases()[5].Make(t, t.TempDir()) // multi-mib
	for _, format := range []string{"qcow2", "vhd", "vhdx", "vmdk", "gcp"} {
		t.Run(format, func(t *testing.T) { noSpace(t, format, in, base) })
	}
}

func noSpace(t *testing.T, format string, in *disk.Input, base string) {
	run := func(mode string) (string, error) {
		job, _ := json.Marshal(noSpaceJob{Format: format, Base: base, Mode: mode, Dir: t.TempDir(), Arch: in.Arch.Name, Kernel: in.Kernel, Initrd: in.Initrd,
			Cmdline: in.Cmdline, PackageDir: in.Loaders.PackageDir, LoaderCache: in.Loaders.CacheDir})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNoSpace$", "-test.v")
		cmd.Env = append(os.Environ(), noSpaceEnv+"="+string(job))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if mode == "tmpfs" {
			cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS
			cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
			cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("tmpfs")
	want := "no space left on device"
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) || strings.Contains(out, "MOUNT-FAILED") {
		t.Logf("no user namespace with tmpfs here (%v); RLIMIT_FSIZE instead", err)
		out, err = run("rlimit")
		want = "exceed the largest file"
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var buildErr, left string
	for _, l := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(l, "BUILD-ERROR: "); ok {
			buildErr = v
		}
		if _, v, ok := strings.Cut(l, "LEFT: "); ok {
			left = v
		}
	}
	t.Logf("error: %s", buildErr)
	if !strings.Contains(buildErr, "no room for") || !strings.Contains(buildErr, want) {
		t.Errorf("error %q does not say the device is full (%q)\n%s", buildErr, want, out)
	}
	if left != "[]" {
		t.Errorf("the failed build left %s in the directory\n%s", left, out)
	}
}

func noSpaceChild(t *testing.T, js string) {
	var job noSpaceJob
	if err := json.Unmarshal([]byte(js), &job); err != nil {
		t.Fatal(err)
	}
	switch job.Mode {
	case "tmpfs":
		syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "")
		if err := syscall.Mount("tmpfs", job.Dir, "tmpfs", 0, "size=4m"); err != nil {
			t.Logf("MOUNT-FAILED: %v", err)
			return
		}
	case "rlimit":
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4 << 20, Max: 4 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := arch.Lookup(job.Arch)
	if err != nil {
		t.Fatal(err)
	}
	in := &disk.Input{
		Payload: disk.Payload{Name: "nospace", Arch: a, Kernel: job.Kernel, Initrd: job.Initrd, Cmdline: job.Cmdline},
		Loaders: &disk.Loaders{PackageDir: job.PackageDir, CacheDir: job.LoaderCache},
	}
	f, err := disk.Lookup(job.Format)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Build(context.Background(), in, job.Base, filepath.Join(job.Dir, f.File))
	t.Logf("BUILD-ERROR: %v", err)
	ents, _ := os.ReadDir(job.Dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	b, _ := json.Marshal(names)
	if names == nil {
		b = []byte("[]")
	}
	t.Logf("LEFT: %s", b)
}
