package vm_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/ssh"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/fake"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// sshSpec is an image with `ssh: true` and no network of its own (SSH turns
// user networking on), the demo program (by an onboot task) and a few
// files to look at. It has no shell: commands are split and run directly.
func sshSpec(t *testing.T) string {
	return qemutest.WriteSpec(t, "sshguest", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
ssh: true
files:
  - {path: /etc/greeting, contents: "hello over ssh\n", mode: 0640}
  - {path: /var/lib/data, directory: true, mode: 0750}
onboot:
  - name: check
    go: %s
    args: [check, /etc/hostname, sshguest]
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/demo")))
}

// bootImage boots img under TCG and registers teardown.
func bootImage(t *testing.T, img *image.Image, opts vm.Options) *vm.VM {
	t.Helper()
	var console qemutest.Buffer
	opts.Console = &console
	opts.Accel = "tcg"
	v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Shutdown(context.Background(), 5*time.Second)
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	})
	return v
}

func within(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	_ = cancel // released by the timeout; tests are short-lived
	return ctx
}

// TestSSH boots an SSH image and exercises Exec, Stat, the timeout, key
// pinning both ways and OpenSSH's client, on one machine.
func TestSSH(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	img := qemutest.BuildSpec(t, a, sshSpec(t))
	m := img.Manifest
	if m.SSH != 22 || m.Network != image.NetworkAuto || !slices.Contains(m.Services, "sshd") {
		t.Errorf("manifest: ssh %d, network %q, services %v; want 22, user, sshd among them", m.SSH, m.Network, m.Services)
	}
	for _, e := range m.Files {
		if strings.HasPrefix(e.Path, "/etc/kitrun") {
			t.Errorf("the image holds %s: keys must arrive per boot, not in the image", e.Path)
		}
	}
	// An extra file under /root must not loosen /root's 0700.
	v := bootImage(t, img, vm.Options{SSH: true, ExtraFiles: []vm.ExtraFile{
		{Path: "/root/.note", Data: []byte("per-boot\n"), Mode: 0o600}}})
	if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()

	t.Run("Exec", func(t *testing.T) {
		r, err := v.Exec(within(30*time.Second), "/usr/bin/demo check /etc/hostname sshguest", nil)
		if err != nil || r.Status != 0 || string(r.Stdout) != "check: /etc/hostname ok\n" || len(r.Stderr) != 0 {
			t.Errorf("check: %+v, %v", str(r), err)
		}
		// The first connection does not wait for the guest's entropy.
		if since := time.Since(ready); since > 5*time.Second {
			t.Errorf("first Exec answered %s after all-ready", since)
		} else {
			t.Logf("first Exec answered %s after all-ready", since.Round(time.Millisecond))
		}
		r, err = v.Exec(within(30*time.Second), "/usr/bin/demo check /etc/hostname 'no such word'", nil)
		if err != nil || r.Status != 1 || !strings.Contains(string(r.Stderr), `does not contain "no such word"`) {
			t.Errorf("failing check: %+v, %v", str(r), err)
		}
		input := bytes.Repeat([]byte("a line of input\n"), 10000) // 160 KB: several windows
		r, err = v.Exec(within(30*time.Second), "demo cat", input)
		if err != nil || r.Status != 0 || !bytes.Equal(r.Stdout, input) {
			t.Errorf("demo cat: status %d, %d bytes out of %d, %v", r.Status, len(r.Stdout), len(input), err)
		}
		// Output past MaxExecOutput is read and counted, not kept.
		old := vm.MaxExecOutput
		vm.MaxExecOutput = 64 << 10
		r, err = v.Exec(within(30*time.Second), "demo cat", input)
		vm.MaxExecOutput = old
		if err != nil || r.Status != 0 || len(r.Stdout) != 64<<10 || r.StdoutCut != int64(len(input)-64<<10) {
			t.Errorf("demo cat past the limit: status %d, kept %d, cut %d of %d, %v", r.Status, len(r.Stdout), r.StdoutCut, len(input), err)
		}
		r, err = v.Exec(within(30*time.Second), "no-such-program", nil)
		if err != nil || r.Status != 127 || !strings.Contains(string(r.Stderr), "command not found") {
			t.Errorf("missing program: %+v, %v", str(r), err)
		}
		r, err = v.Exec(within(30*time.Second), "demo check /etc/hostname x | cat", nil)
		if err != nil || r.Status != 2 || !strings.Contains(string(r.Stderr), "needs a shell") {
			t.Errorf("shell syntax without a shell: %+v, %v", str(r), err)
		}
	})

	t.Run("Stat", func(t *testing.T) {
		ctx := within(30 * time.Second)
		fi, err := v.Stat(ctx, "/etc/hostname")
		if err != nil || !fi.Exists || fi.Type != "file" || fi.Mode != "0644" || string(fi.Content) != "sshguest\n" || fi.Size != 9 {
			t.Errorf("/etc/hostname: %+v, %v", fi, err)
		}
		fi, err = v.Stat(ctx, "/etc/greeting")
		if err != nil || fi.Mode != "0640" || string(fi.Content) != "hello over ssh\n" || fi.SHA256 == "" {
			t.Errorf("/etc/greeting: %+v, %v", fi, err)
		}
		fi, err = v.Stat(ctx, "/no/such/file")
		if err != nil || fi.Exists {
			t.Errorf("missing path: %+v, %v", fi, err)
		}
		for p, want := range map[string]string{"/var/lib/data": "0750", "/root": "0700", "/tmp": "1777", "/etc/kitrun/ssh": "0755"} {
			fi, err = v.Stat(ctx, p)
			if err != nil || fi.Type != "dir" || fi.Mode != want {
				t.Errorf("%s: %+v, %v; want a directory with mode %s", p, fi, err, want)
			}
		}
		fi, err = v.Stat(ctx, "/bin")
		if err != nil || fi.Type != "symlink" || fi.Target != "usr/bin" {
			t.Errorf("/bin: %+v, %v", fi, err)
		}
		fi, err = v.Stat(ctx, vm.GuestHostKey)
		if err != nil || fi.Mode != "0600" || !strings.Contains(string(fi.Content), "OPENSSH PRIVATE KEY") {
			t.Errorf("host key: mode %s, %v", fi.Mode, err)
		}
		fi, err = v.Stat(ctx, vm.GuestRandomSeed)
		if err != nil || fi.Exists {
			t.Errorf("random seed: %+v, %v; kitsshd should have used and removed it", fi, err)
		}
		fi, err = v.Stat(ctx, "/root/.note")
		if err != nil || string(fi.Content) != "per-boot\n" || fi.Mode != "0600" {
			t.Errorf("extra file: %+v, %v", fi, err)
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		// demo worker never exits: Exec must give up with ctx and close
		// the session, and the guest must kill the command.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r, err := v.Exec(ctx, "demo worker /tmp/worker.ready", nil)
		took := time.Since(start)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after") {
			t.Fatalf("got %+v, %v; want a timeout error", str(r), err)
		}
		if took > 4*time.Second {
			t.Errorf("Exec returned %s after its 3s deadline", took-3*time.Second)
		}
		if !strings.Contains(string(r.Stdout), "worker: ready") {
			t.Errorf("partial output %q lacks the worker's first line", r.Stdout)
		}
		// The server is fine afterwards.
		r, err = v.Exec(within(30*time.Second), "kitrun-ping", nil)
		if err != nil || string(r.Stdout) != "pong\n" {
			t.Errorf("ping after a timeout: %+v, %v", str(r), err)
		}
	})

	t.Run("Signal", func(t *testing.T) {
		c, err := v.SSHClient(within(30 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sess, _ := c.NewSession()
		defer sess.Close()
		var out qemutest.Buffer
		sess.Stdout = &out
		if err := sess.Start("demo worker /tmp/worker2.ready"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
		sess.Signal(ssh.SIGTERM) // demo's worker exits 0 on TERM, saying so
		if err := sess.Wait(); err != nil || !strings.Contains(out.String(), "terminated, exiting") {
			t.Errorf("TERM: %v, output %q", err, out.String())
		}
	})

	t.Run("WrongClientKey", func(t *testing.T) {
		addr, _, _, err := v.SSHInfo()
		if err != nil {
			t.Fatal(err)
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(other)
		cfg := v.SSHKeys().ClientConfig()
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
		cfg.Timeout = 20 * time.Second
		c, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			c.Close()
			t.Fatal("the guest accepted an unknown client key")
		}
		if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("unknown key: %v", err)
		}
	})

	t.Run("WrongHostKey", func(t *testing.T) {
		addr, _, _, _ := v.SSHInfo()
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(other)
		cfg := v.SSHKeys().ClientConfig()
		cfg.HostKeyCallback = ssh.FixedHostKey(signer.PublicKey())
		cfg.Timeout = 20 * time.Second
		c, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			c.Close()
			t.Fatal("a guest with another host key was accepted")
		}
		if !strings.Contains(err.Error(), "host key mismatch") {
			t.Errorf("wrong host key: %v", err)
		}
	})

	t.Run("OpenSSH", func(t *testing.T) {
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("no OpenSSH client")
		}
		addr, key, known, err := v.SSHInfo()
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", key,
			"-o", "UserKnownHostsFile="+known, "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
			"-p", port, "root@"+host, "kitrun-ping")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "pong\n" {
			t.Errorf("ssh kitrun-ping: %v, %q", err, out)
		}
	})

	t.Run("Latency", func(t *testing.T) {
		ctx := within(60 * time.Second)
		start := time.Now()
		c, err := v.SSHClient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dial := time.Since(start)
		c.Close()
		var took []time.Duration
		for range 20 {
			start := time.Now()
			r, err := v.Exec(ctx, "kitrun-ping", nil)
			if err != nil || r.Status != 0 {
				t.Fatal(r, err)
			}
			took = append(took, time.Since(start))
		}
		var prog []time.Duration
		for range 10 {
			start := time.Now()
			if _, err := v.Exec(ctx, "/usr/bin/demo check /etc/hostname sshguest", nil); err != nil {
				t.Fatal(err)
			}
			prog = append(prog, time.Since(start))
		}
		t.Logf("TCG: new SSH connection %s; Exec kitrun-ping median %s (min %s, max %s); Exec of a Go program median %s",
			dial.Round(time.Millisecond), median(took), slices.Min(took).Round(time.Millisecond),
			slices.Max(took).Round(time.Millisecond), median(prog))
	})
}

// BenchmarkSSHBootCost boots examples/minimal.yml as built and with SSH
// forced on (assemble.Options.SSH, booted with keys), ABBA-interleaved, and
// reports the median all-ready of each (host clock, from QEMU exec) and,
// with SSH, the time until a first Exec has answered:
//
//	go test ./hypervisor/vm -run - -bench SSHBootCost -benchtime 6x
func BenchmarkSSHBootCost(b *testing.B) {
	a := qemutest.Require(b, "x86_64")
	minimal := filepath.Join(qemutest.RepoRoot(b), "examples", "minimal.yml")
	plain := qemutest.BuildSpec(b, a, minimal)
	withSSH := qemutest.BuildSpec(b, a, minimal, func(o *assemble.Options) { o.SSH = true })
	var plainReady, sshReady, firstExec []time.Duration
	run := func(img *image.Image, ssh bool) {
		v, err := vm.Boot(context.Background(), &qemu.Backend{}, img, vm.Options{Resources: hypervisor.Resources{Accel: "tcg"}, SSH: ssh})
		if err != nil {
			b.Fatal(err)
		}
		defer v.Shutdown(context.Background(), 5*time.Second)
		if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
			b.Fatal(err)
		}
		var ready time.Duration
		for _, m := range v.Timeline() {
			if m.Stage.Kind == initproto.EvAllReady {
				ready = m.Host
			}
		}
		if !ssh {
			plainReady = append(plainReady, ready)
			return
		}
		sshReady = append(sshReady, ready)
		if _, err := v.Exec(within(30*time.Second), "kitrun-ping", nil); err != nil {
			b.Fatal(err)
		}
		firstExec = append(firstExec, time.Since(v.Machine.Info().Started))
	}
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			run(plain, false)
			run(withSSH, true)
		} else {
			run(withSSH, true)
			run(plain, false)
		}
	}
	b.ReportMetric(median(plainReady).Seconds(), "plain-all-ready-s")
	b.ReportMetric(median(sshReady).Seconds(), "ssh-all-ready-s")
	b.ReportMetric(median(firstExec).Seconds(), "ssh-first-exec-s")
}

// TestSSHOptionNeedsAnSSHImage: asking for SSH on an image without a
// server fails before anything starts.
func TestSSHOptionNeedsAnSSHImage(t *testing.T) {
	img := fakeImage(t, image.Manifest{Name: "plain", Network: image.NetworkAuto})
	_, err := vm.Boot(context.Background(), &fake.Backend{}, img, vm.Options{SSH: true})
	if err == nil || err.Error() != `image plain has no SSH server; add "ssh: true" to its spec` {
		t.Errorf("got %v", err)
	}
	v, err := vm.Boot(context.Background(), &fake.Backend{}, img, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Kill()
	if _, err := v.Exec(context.Background(), "kitrun-ping", nil); err == nil || !strings.Contains(err.Error(), "without SSH") {
		t.Errorf("Exec without SSH: %v", err)
	}
}

// TestSSHImageAssembly: `ssh: true` and assemble.Options.SSH both install
// kitsshd and its service and turn networking on; an image without SSH is
// untouched.
func TestSSHImageAssembly(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	plain := qemutest.BuildSpec(t, a, example(t, "minimal.yml"))
	forced := qemutest.BuildSpec(t, a, example(t, "minimal.yml"), func(o *assemble.Options) { o.SSH = true })
	if plain.Manifest.SSH != 0 || plain.Manifest.Network != "none" || hasPath(plain.Manifest, "/usr/sbin/kitsshd") ||
		slices.Contains(plain.Manifest.Services, "sshd") {
		t.Errorf("minimal without SSH: ssh %d, network %s, services %v", plain.Manifest.SSH, plain.Manifest.Network, plain.Manifest.Services)
	}
	m := forced.Manifest
	if m.SSH != 22 || m.Network != image.NetworkAuto || !hasPath(m, "/usr/sbin/kitsshd") || !slices.Equal(m.Services, []string{"hello", "sshd"}) {
		t.Errorf("minimal with SSH forced: ssh %d, network %s, services %v", m.SSH, m.Network, m.Services)
	}
	if plain.Manifest.Initrd.SHA256 == m.Initrd.SHA256 {
		t.Error("forcing SSH did not change the initramfs")
	}
	for _, e := range m.Files {
		if e.Path == "/usr/sbin/kitsshd" {
			t.Logf("kitsshd: %d bytes uncompressed; initrd %d → %d bytes compressed with SSH", e.Size, plain.Manifest.Initrd.Size, m.Initrd.Size)
		}
	}
	// kitinit's configuration runs it with the default key paths and a port
	// probe.
	cfg := readConfig(t, forced)
	var sshd map[string]any
	for _, s := range cfg["services"].([]any) {
		if s := s.(map[string]any); s["name"] == "sshd" {
			sshd = s
		}
	}
	want := `{"exec":{"args":["-port","22","-host-key","/etc/kitrun/ssh/host_key","-authorized-keys","/etc/kitrun/ssh/authorized_keys"],"gid":0,"path":"/usr/sbin/kitsshd","uid":0},"name":"sshd","ready":{"interval":"10ms","tcp":"127.0.0.1:22","timeout":"10s"},"restart":{"backoff":"100ms","max_backoff":"5s","policy":"always"}}`
	if got, _ := json.Marshal(sshd); string(got) != want {
		t.Errorf("sshd service:\n%s\nwant\n%s", got, want)
	}
	if cfg["network"] == nil {
		t.Error("kitinit configures no network in an SSH image")
	}

	// A spec service named sshd clashes.
	p := qemutest.WriteSpec(t, "clash", fmt.Sprintf("version: 1\nkernel: {package: linux-image-cloud}\nssh: {port: 2222}\nservices:\n  - name: sshd\n    go: %s\n",
		filepath.Join(qemutest.RepoRoot(t), "examples/cmd/hello")))
	s, err := specParse(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := assemble.Build(context.Background(), s, t.TempDir(), assemble.Options{Platform: qemutest.Platform(t, a)}); err == nil || !strings.Contains(err.Error(), `service name "sshd"`) {
		t.Errorf("clash: %v", err)
	}
}

// TestExtraFilesEveryCompression boots an image, in each compression,
// with an extra file appended at boot that an onboot task checks: the
// kernel must unpack the appended archive after the image's, replacing the
// image's own file.
func TestExtraFilesEveryCompression(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	// The image has the file too: the appended one must replace it.
	p := qemutest.WriteSpec(t, "extra", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
files:
  - {path: /etc/extra/boot.conf, contents: "built in\n"}
onboot:
  - name: check
    go: %s
    args: [check, /etc/extra/boot.conf, per-boot-magic]
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/demo")))
	for _, comp := range []string{"zstd", "gzip", "lz4", "xz", "none"} {
		t.Run(comp, func(t *testing.T) {
			img := qemutest.BuildSpec(t, a, p, func(o *assemble.Options) { o.Compression = comp })
			v := bootImage(t, img, vm.Options{ExtraFiles: []vm.ExtraFile{
				{Path: "/etc/extra/boot.conf", Data: []byte("per-boot-magic\n")}}})
			if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSeedArchive checks the per-boot archive a backend gets (Spec.Seed):
// a newc archive whose parent directories keep the image's modes and
// owners, refusing paths the image has as directories or symlinks.
func TestSeedArchive(t *testing.T) {
	img := fakeImage(t, image.Manifest{Name: "x", Files: []image.Entry{
		{Path: "/etc", Type: "dir", Mode: "0755"},
		{Path: "/root", Type: "dir", Mode: "0700"},
		{Path: "/srv", Type: "dir", Mode: "0750", UID: 7, GID: 8},
		{Path: "/bin", Type: "symlink", Mode: "0777", Target: "usr/bin"},
		{Path: "/var/lib", Type: "dir", Mode: "0755"},
	}})
	be := &fake.Backend{}
	v, err := vm.Boot(context.Background(), be, img, vm.Options{ExtraFiles: []vm.ExtraFile{
		{Path: "/root/.ssh/x", Data: []byte("secret"), Mode: 0o600},
		{Path: "/srv/a", Data: []byte("a")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Kill()
	recs := seedFiles(t, be.Specs()[0].Seed)
	var names []string
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "/root /root/.ssh /root/.ssh/x /srv /srv/a" {
		t.Errorf("archive holds %v", names)
	}
	check := func(name string, mode uint32, uid uint32) {
		if rec := recs[name]; rec.Mode != mode || rec.UID != uid {
			t.Errorf("%s: mode %o uid %d, want %o uid %d", name, rec.Mode, rec.UID, mode, uid)
		}
	}
	check("/root", cpio.TypeDir|0o700, 0)
	check("/root/.ssh", cpio.TypeDir|0o755, 0)
	check("/root/.ssh/x", cpio.TypeReg|0o600, 0)
	check("/srv", cpio.TypeDir|0o750, 7)
	check("/srv/a", cpio.TypeReg|0o644, 0)
	if string(recs["/root/.ssh/x"].Data) != "secret" {
		t.Errorf("content %q", recs["/root/.ssh/x"].Data)
	}

	// A parent that is a symlink in the image is refused; so is a path
	// that is a directory there, and a relative one.
	for p, want := range map[string]string{
		"/bin/tool": "/bin is a symlink in the image",
		"/var/lib":  "the image has a directory there",
		"etc/x":     "need an absolute file path",
	} {
		_, err := vm.Boot(context.Background(), &fake.Backend{}, img, vm.Options{ExtraFiles: []vm.ExtraFile{{Path: p}}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", p, err, want)
		}
	}
}

func seedFiles(t *testing.T, seed []byte) map[string]cpio.Record {
	t.Helper()
	recs := map[string]cpio.Record{}
	r := cpio.NewReader(bytes.NewReader(seed))
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		recs["/"+rec.Name] = rec
	}
	return recs
}

// TestSSHKeysArrivePerBoot: an image with an SSH server gets fresh keys
// and a published SSH port at every boot, asked for or not, and they go
// into the per-boot seed, never the image.
func TestSSHKeysArrivePerBoot(t *testing.T) {
	img := fakeImage(t, image.Manifest{Name: "s", SSH: 2222, Network: image.NetworkAuto, Files: []image.Entry{
		{Path: "/usr/sbin/kitsshd", Type: "file", Mode: "0755"}}})
	mine := make([]hypervisor.PortForward, 1, 4) // room to append in place
	mine[0] = hypervisor.PortForward{HostAddr: "127.0.0.1", GuestPort: 80}
	var keys []string
	for range 2 {
		be := &fake.Backend{}
		v, err := vm.Boot(context.Background(), be, img, vm.Options{Publish: mine})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Kill()
		if v.SSHKeys() == nil {
			t.Fatal("no SSH keys")
		}
		addr, err := v.SSHAddr()
		if err != nil {
			t.Fatal(err)
		}
		spec := be.Specs()[0]
		want := []hypervisor.PortForward{mine[0], {HostAddr: "127.0.0.1", GuestPort: 2222}}
		if !slices.Equal(spec.Publish, want) {
			t.Errorf("publish %v, want %v", spec.Publish, want)
		}
		if ep, _ := v.Machine.Endpoint(2222); ep != addr || addr == "" {
			t.Errorf("SSH address %q, endpoint of guest port 2222 %q", addr, ep)
		}
		files := seedFiles(t, spec.Seed)
		hk, ak, seed := files[vm.GuestHostKey], files[vm.GuestAuthorizedKeys], files[vm.GuestRandomSeed]
		if hk.Perm() != 0o600 || !bytes.Equal(hk.Data, v.SSHKeys().HostKeyPEM()) ||
			ak.Perm() != 0o644 || !bytes.Equal(ak.Data, v.SSHKeys().AuthorizedKey()) ||
			seed.Perm() != 0o600 || len(seed.Data) != 64 {
			t.Errorf("guest key files: host key %o, authorized keys %o %q, seed %o %d bytes", hk.Perm(), ak.Perm(), ak.Data, seed.Perm(), len(seed.Data))
		}
		keys = append(keys, string(hk.Data))
	}
	if keys[0] == keys[1] {
		t.Error("two boots got the same host key")
	}
	if spare := mine[:2][1]; spare != (hypervisor.PortForward{}) {
		t.Errorf("Boot appended to the caller's Publish array: %v", spare)
	}
}

// TestBootWithoutExtrasHasNoSeed: no extra files, no seed.
func TestBootWithoutExtrasHasNoSeed(t *testing.T) {
	img := fakeImage(t, image.Manifest{Name: "x"})
	be := &fake.Backend{}
	v, err := vm.Boot(context.Background(), be, img, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Kill()
	if seed := be.Specs()[0].Seed; len(seed) != 0 {
		t.Errorf("a seed of %d bytes without extra files", len(seed))
	}
}

// fakeImage is an image directory whose initrd is 5 bytes (not a multiple
// of 4) and whose manifest is m.
func fakeImage(t *testing.T, m image.Manifest) *image.Image {
	dir := t.TempDir()
	p := filepath.Join(dir, image.InitrdFile)
	os.WriteFile(p, []byte("BASE!"), 0o644)
	return &image.Image{Dir: dir, Initrd: p, Kernel: filepath.Join(dir, image.KernelFile), Arch: arch.Host(), Manifest: m}
}

func hasPath(m image.Manifest, p string) bool {
	for _, e := range m.Files {
		if e.Path == p {
			return true
		}
	}
	return false
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type execStr struct {
	Status         int
	Stdout, Stderr string
	Signal         string
}

func str(r vm.ExecResult) execStr {
	return execStr{r.Status, string(r.Stdout), string(r.Stderr), r.Signal}
}

func specParse(p string) (*spec.Spec, error) { return spec.Parse(p) }

// readConfig reads kitinit's configuration out of an image's initramfs.
func readConfig(t *testing.T, img *image.Image) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(img.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	r := cpio.NewReader(dec)
	for {
		rec, err := r.Next()
		if err != nil {
			t.Fatalf("no %s in the initramfs: %v", initproto.ConfigPath, err)
		}
		if "/"+rec.Name == initproto.ConfigPath {
			var cfg map[string]any
			if err := json.Unmarshal(rec.Data, &cfg); err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
}
