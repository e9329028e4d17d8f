package vm

// SSH into guests, and files delivered at boot.
//
// An image built with `ssh: true` holds kitrun's SSH server (kitsshd) but no
// keys: images stay reproducible and cacheable. Boot generates a host key
// and a client key for each boot (boot/sshkeys) and hands the guest its
// share in a second initramfs archive appended to the image's (ExtraFiles;
// the kernel unpacks concatenated archives in order). It forwards a free
// loopback port to the guest's SSH port, and the host then connects with the
// client key and accepts only the pinned host key. A random seed for the
// guest's kernel goes along with the keys, so that the guest's first key
// exchange does not wait for its entropy (kitsshd.CreditSeed).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/kitsshd"
	"github.com/kitrun/kitrun/boot/runtimedir"
	"github.com/kitrun/kitrun/boot/sshkeys"
	"github.com/kitrun/kitrun/hypervisor"
)

// kitsshdPath is where the assembler installs kitsshd.
const kitsshdPath = "/usr/sbin/kitsshd"

// Where the guest's kitsshd finds its keys (the assembler's arguments) and
// the random seed it credits to the guest kernel (kitsshd.CreditSeed).
const (
	GuestHostKey        = kitsshd.DefaultHostKey
	GuestAuthorizedKeys = kitsshd.DefaultAuthorizedKeys
	GuestRandomSeed     = kitsshd.DefaultRandomSeed
)

// ExtraFile is a file added to the guest's root filesystem at boot, on top
// of the image's own (replacing a file of the same path).
type ExtraFile struct {
	Path string // absolute guest path
	Data []byte
	Mode uint32 // permission bits; 0644 when zero
}

// ExecResult is how a command run in the guest ended.
type ExecResult struct {
	// Status is the exit status; 128+N when signal N killed the command.
	Status         int
	Stdout, Stderr []byte
	// StdoutCut and StderrCut count the bytes past MaxExecOutput that the
	// command wrote and Exec did not keep.
	StdoutCut, StderrCut int64
	// Signal names the signal that killed the command ("KILL", "TERM"),
	// empty when it exited.
	Signal string
}

// FileInfo describes a guest path (kitrun-stat's answer).
type FileInfo = kitsshd.FileInfo

// sshState is a VM's SSH access: this boot's keys and forwarded port.
type sshState struct {
	keys      *sshkeys.Keys
	guestPort int
	// endpoint finds where the host reaches a guest port (the machine's).
	endpoint func(guestPort int) (string, error)

	mu        sync.Mutex
	client    *ssh.Client // shared by Exec and Stat
	filesDir  string      // SSHInfo's files
	keyPath   string
	knownPath string
}

// setupSSH checks that img has an SSH server, makes this boot's keys,
// adds the guest's share to opts.ExtraFiles and forwards a free loopback
// port to the guest's SSH port.
func setupSSH(img *image.Image, opts *Options) (*sshState, error) {
	m := img.Manifest
	if !hasSSHServer(m) {
		return nil, fmt.Errorf("image %s has no SSH server; add \"ssh: true\" to its spec", m.Name)
	}
	if m.Network != image.NetworkAuto {
		return nil, fmt.Errorf("image %s has an SSH port but no network; rebuild it with this kitrun", m.Name)
	}
	keys, err := sshkeys.Generate()
	if err != nil {
		return nil, err
	}
	seed := make([]byte, 64)
	rand.Read(seed)
	opts.ExtraFiles = append(opts.ExtraFiles[:len(opts.ExtraFiles):len(opts.ExtraFiles)],
		ExtraFile{Path: GuestHostKey, Data: keys.HostKeyPEM(), Mode: 0o600},
		ExtraFile{Path: GuestAuthorizedKeys, Data: keys.AuthorizedKey(), Mode: 0o644},
		ExtraFile{Path: GuestRandomSeed, Data: seed, Mode: 0o600})
	opts.Publish = append(opts.Publish[:len(opts.Publish):len(opts.Publish)],
		hypervisor.PortForward{HostAddr: "127.0.0.1", GuestPort: m.SSH})
	return &sshState{keys: keys, guestPort: m.SSH}, nil
}

// hasSSHServer says whether img was built with kitrun's SSH server.
func hasSSHServer(m image.Manifest) bool { return m.SSH != 0 && hasFile(m, kitsshdPath) }

func hasFile(m image.Manifest, p string) bool {
	for _, e := range m.Files {
		if e.Path == p {
			return true
		}
	}
	return false
}

// seedArchive packs files into the newc archive a backend delivers over the
// image's files (hypervisor.Spec.Seed).
//
// Parent directories get the image's own mode and owner (a record for /root
// with WriteTree's default 0755 would loosen the image's 0700), and a parent
// that is not a directory in the image is an error: the archive would
// replace the image's symlink (/bin → usr/bin) with a directory.
func seedArchive(img *image.Image, files []ExtraFile) ([]byte, error) {
	inImage := map[string]image.Entry{}
	for _, e := range img.Manifest.Files {
		inImage[e.Path] = e
	}
	var recs []cpio.Record
	added := map[string]bool{}
	for _, f := range files {
		p := path.Clean(f.Path)
		if !path.IsAbs(f.Path) || p == "/" {
			return nil, fmt.Errorf("extra file %q: need an absolute file path", f.Path)
		}
		if e, ok := inImage[p]; ok && e.Type == "dir" {
			return nil, fmt.Errorf("extra file %s: the image has a directory there", p)
		}
		mode := f.Mode & cpio.PermMask
		if mode == 0 {
			mode = 0o644
		}
		recs = append(recs, cpio.File(p, f.Data, mode))
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if added[d] {
				continue
			}
			added[d] = true
			e, ok := inImage[d]
			if !ok {
				continue // WriteTree adds it with 0755
			}
			if e.Type != "dir" {
				return nil, fmt.Errorf("extra file %s: %s is a %s in the image, not a directory; use the real path", p, d, e.Type)
			}
			perm, err := strconv.ParseUint(e.Mode, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("image manifest: %s has mode %q", d, e.Mode)
			}
			r := cpio.Dir(d, uint32(perm))
			r.UID, r.GID = uint32(e.UID), uint32(e.GID)
			recs = append(recs, r)
		}
	}
	var archive bytes.Buffer
	if err := cpio.WriteTree(&archive, recs); err != nil {
		return nil, fmt.Errorf("extra files: %w", err)
	}
	return archive.Bytes(), nil
}

func (v *VM) sshAccess() (*sshState, error) {
	if v.ssh == nil {
		return nil, fmt.Errorf("VM of image %s was booted without SSH (vm.Options.SSH, and `ssh: true` in the spec)", v.Image.Manifest.Name)
	}
	return v.ssh, nil
}

// SSHAddr is where the host reaches the guest's SSH server ("host:port").
func (v *VM) SSHAddr() (string, error) {
	s, err := v.sshAccess()
	if err != nil {
		return "", err
	}
	return s.endpoint(s.guestPort)
}

// SSHKeys returns this boot's keys, nil without SSH.
func (v *VM) SSHKeys() *sshkeys.Keys {
	if v.ssh == nil {
		return nil
	}
	return v.ssh.keys
}

// SSHClient connects to the guest as root with this boot's client key,
// accepting only this boot's host key. Until ctx is done it retries what
// may be a guest still booting (refused or dropped connections); a refused
// key or a wrong host key fails at once. The caller closes the client.
func (v *VM) SSHClient(ctx context.Context) (*ssh.Client, error) {
	s, err := v.sshAccess()
	if err != nil {
		return nil, err
	}
	return s.dial(ctx, v.exited)
}

// hostKeyError is a server that presented another key than this boot's.
type hostKeyError struct{ got string }

func (e *hostKeyError) Error() string {
	return "the guest presented host key " + e.got + ", not this boot's: refusing to connect"
}

func (s *sshState) dial(ctx context.Context, exited <-chan struct{}) (*ssh.Client, error) {
	addr, err := s.endpoint(s.guestPort)
	if err != nil {
		return nil, fmt.Errorf("ssh to guest: %w", err)
	}
	cfg := s.keys.ClientConfig()
	pinned := cfg.HostKeyCallback
	cfg.HostKeyCallback = func(host string, remote net.Addr, key ssh.PublicKey) error {
		if pinned(host, remote, key) != nil {
			return &hostKeyError{got: ssh.FingerprintSHA256(key)}
		}
		return nil
	}
	delay := 20 * time.Millisecond
	for {
		c, err := dialOnce(ctx, addr, cfg)
		if err == nil {
			return c, nil
		}
		var hk *hostKeyError
		if errors.As(err, &hk) || strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("ssh to guest at %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh to guest at %s: %w (last attempt: %v)", addr, ctx.Err(), err)
		case <-exited:
			return nil, fmt.Errorf("ssh to guest at %s: the machine has exited", addr)
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// dialOnce makes one connection attempt. QEMU accepts on the guest's
// behalf before the guest answers, so the handshake has a deadline too.
func dialOnce(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// shared returns the connection Exec and Stat use, dialling it if needed.
func (s *sshState) shared(ctx context.Context, exited <-chan struct{}, fresh bool) (*ssh.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil && !fresh {
		return s.client, nil
	}
	if s.client != nil {
		s.client.Close()
		s.client = nil
	}
	c, err := s.dial(ctx, exited)
	if err != nil {
		return nil, err
	}
	s.client = c
	return c, nil
}

func (s *sshState) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.client.Close()
		s.client = nil
	}
	if s.filesDir != "" {
		os.RemoveAll(s.filesDir)
	}
}

// Exec runs cmd in the guest with stdin as its input (through /bin/sh -c
// when the image has a shell; otherwise cmd is split into words, with
// quotes, and the program is run directly). A non-zero exit is a result,
// not an error: errors are for SSH failures and for ctx ending first, in
// which case the session is closed, the guest kills the command, and the
// error wraps ctx.Err() and carries whatever output came until then.
func (v *VM) Exec(ctx context.Context, cmd string, stdin []byte) (ExecResult, error) {
	start := time.Now()
	s, err := v.sshAccess()
	if err != nil {
		return ExecResult{}, err
	}
	var sess *ssh.Session
	for attempt := 0; ; attempt++ {
		c, err := s.shared(ctx, v.exited, attempt > 0)
		if err != nil {
			return ExecResult{}, fmt.Errorf("exec %q: %w", cmd, err)
		}
		if sess, err = c.NewSession(); err == nil {
			break
		}
		if attempt > 0 { // a fresh connection failed too
			return ExecResult{}, fmt.Errorf("exec %q: %w", cmd, err)
		}
	}
	defer sess.Close()
	var stdout, stderr lockedBuffer
	sess.Stdin = bytes.NewReader(stdin)
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Start(cmd); err != nil {
		return ExecResult{}, fmt.Errorf("exec %q: %w", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Close() // kitsshd hangs the command up
		res := ExecResult{Status: -1, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), StdoutCut: stdout.Cut(), StderrCut: stderr.Cut()}
		return res, fmt.Errorf("exec %q timed out after %s (the command was killed): %w",
			cmd, time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	res := ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), StdoutCut: stdout.Cut(), StderrCut: stderr.Cut()}
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Status, res.Signal = ee.ExitStatus(), ee.Signal()
	default:
		return res, fmt.Errorf("exec %q: %w", cmd, err)
	}
	return res, nil
}

// Stat describes a guest path without following a final symlink, with the
// content of regular files up to 1 MiB. A missing path is not an error:
// Exists is false.
func (v *VM) Stat(ctx context.Context, p string) (FileInfo, error) {
	r, err := v.Exec(ctx, kitsshd.CmdStat+" "+kitsshd.Quote(p), nil)
	if err != nil {
		return FileInfo{}, err
	}
	if r.Status != 0 {
		return FileInfo{}, fmt.Errorf("stat %s in the guest: status %d: %s", p, r.Status, bytes.TrimSpace(r.Stderr))
	}
	var fi FileInfo
	if err := json.Unmarshal(r.Stdout, &fi); err != nil {
		return FileInfo{}, fmt.Errorf("stat %s in the guest: %v in %q", p, err, r.Stdout)
	}
	return fi, nil
}

// SSHInfo writes this boot's client key and a known_hosts file pinning the
// guest's host key into a private directory (removed when the machine
// exits), for OpenSSH, and returns them with the guest's SSH address:
//
//	ssh -i KEY -o UserKnownHostsFile=KNOWN -o IdentitiesOnly=yes -p PORT root@HOST
//
// (IdentitiesOnly keeps an agent's other keys from using up the server's
// authentication attempts.)
func (v *VM) SSHInfo() (addr, keyPath, knownHostsPath string, err error) {
	s, err := v.sshAccess()
	if err != nil {
		return "", "", "", err
	}
	if addr, err = s.endpoint(s.guestPort); err != nil {
		return "", "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.filesDir == "" {
		select {
		case <-v.exited:
			return "", "", "", hypervisor.ErrExited
		default:
		}
		dir, err := runtimedir.MkdirTemp("ssh-")
		if err != nil {
			return "", "", "", err
		}
		if s.keyPath, s.knownPath, err = s.keys.WriteClientFiles(dir, addr); err != nil {
			os.RemoveAll(dir)
			return "", "", "", err
		}
		s.filesDir = dir
	}
	return addr, s.keyPath, s.knownPath, nil
}

// MaxExecOutput bounds what Exec keeps of each of a command's output
// streams; the rest is read and counted (ExecResult.StdoutCut, StderrCut),
// so that a guest command cannot make kitrun hold unbounded memory.
var MaxExecOutput = 16 << 20

// lockedBuffer collects output, up to MaxExecOutput, that a timed-out Exec
// may read while the session is still writing.
type lockedBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	cut int64
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := max(0, MaxExecOutput-l.b.Len())
	if len(p) > room {
		l.cut += int64(len(p) - room)
		l.b.Write(p[:room])
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) Cut() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
