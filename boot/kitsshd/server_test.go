//go:build unix

package kitsshd_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kitrun/kitrun/boot/kitsshd"
	"github.com/kitrun/kitrun/boot/sshkeys"
)

// server starts a kitsshd on a random loopback port, in-process.
type server struct {
	keys *sshkeys.Keys
	port int
	logs *bytes.Buffer
}

func start(t *testing.T, shell string) *server {
	t.Helper()
	keys, err := sshkeys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostKey, authorized := filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys")
	os.WriteFile(hostKey, keys.HostKeyPEM(), 0o600)
	os.WriteFile(authorized, append([]byte("# comment\n\n"), keys.AuthorizedKey()...), 0o644)
	host, authKeys, err := kitsshd.LoadKeys(hostKey, authorized)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	srv, err := kitsshd.New(kitsshd.Config{HostKey: host, AuthorizedKeys: authKeys, Shell: shell,
		Logf: func(f string, a ...any) { fmt.Fprintf(logs, f+"\n", a...) }})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &server{keys: keys, port: l.Addr().(*net.TCPAddr).Port, logs: logs}
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *server) client(t *testing.T) *ssh.Client {
	t.Helper()
	cfg := s.keys.ClientConfig()
	cfg.Timeout = 10 * time.Second
	c, err := ssh.Dial("tcp", s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type result struct {
	status         int
	signal         string
	stdout, stderr string
}

func run(t *testing.T, c *ssh.Client, cmd, stdin string, env ...string) result {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for i := 0; i+1 < len(env); i += 2 {
		if err := sess.Setenv(env[i], env[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = strings.NewReader(stdin), &out, &errb
	err = sess.Run(cmd)
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		r.status, r.signal = ee.ExitStatus(), ee.Signal()
	case err != nil:
		t.Fatalf("%s: %v", cmd, err)
	}
	return r
}

func TestExecWithShell(t *testing.T) {
	c := start(t, "/bin/sh").client(t)
	for _, tc := range []struct {
		cmd, stdin string
		env        []string
		want       result
	}{
		{cmd: "kitrun-ping", want: result{stdout: "pong\n"}},
		{cmd: "echo out; echo err >&2; exit 3", want: result{status: 3, stdout: "out\n", stderr: "err\n"}},
		{cmd: "cat; echo done", stdin: "line 1\nline 2\n", want: result{stdout: "line 1\nline 2\ndone\n"}},
		{cmd: `echo "$FOO|$HOME|$USER|$PATH"`, env: []string{"FOO", "bar"}, want: result{stdout: "bar|/root|root|" + kitsshd.DefaultPath + "\n"}},
		{cmd: "kill -TERM $$", want: result{status: 128 + 15, signal: "TERM"}},
		{cmd: "", want: result{}},
	} {
		if got := run(t, c, tc.cmd, tc.stdin, tc.env...); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.cmd, got, tc.want)
		}
	}
}

// Without a shell the command is split into words and run directly.
func TestExecWithoutShell(t *testing.T) {
	c := start(t, "/nonexistent/sh").client(t)
	for _, tc := range []struct {
		cmd    string
		status int
		stdout string
		stderr string
	}{
		{cmd: `echo 'a  b' "c"  d`, stdout: "a  b c d\n"},
		{cmd: `/bin/echo x`, stdout: "x\n"},
		{cmd: "false", status: 1},
		{cmd: "no-such-program x", status: 127, stderr: "kitsshd: no-such-program: command not found\n"},
		{cmd: "echo a | cat", status: 2, stderr: `"|" needs a shell`},
		{cmd: "echo 'open", status: 2, stderr: "unterminated"},
		{cmd: "kitrun-ping", stdout: "pong\n"},
	} {
		got := run(t, c, tc.cmd, "")
		if got.status != tc.status || got.stdout != tc.stdout || !strings.Contains(got.stderr, tc.stderr) {
			t.Errorf("%q: got %+v, want status %d stdout %q stderr containing %q", tc.cmd, got, tc.status, tc.stdout, tc.stderr)
		}
	}
	// A shell request fails clearly.
	sess, _ := c.NewSession()
	defer sess.Close()
	var out syncBuffer
	sess.Stdout, sess.Stderr = &out, &out
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	err := sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 127 || !strings.Contains(out.String(), kitsshd.NoShellMessage) {
		t.Errorf("shell without a shell: %v, output %q", err, out.String())
	}
}

func TestStatBuiltin(t *testing.T) {
	c := start(t, "/nonexistent/sh").client(t)
	p := filepath.Join(t.TempDir(), "it's here")
	os.WriteFile(p, []byte("content"), 0o600)
	r := run(t, c, "kitrun-stat "+kitsshd.Quote(p), "")
	var fi kitsshd.FileInfo
	if err := json.Unmarshal([]byte(r.stdout), &fi); err != nil || r.status != 0 {
		t.Fatalf("%+v: %v", r, err)
	}
	if !fi.Exists || fi.Path != p || fi.Mode != "0600" || string(fi.Content) != "content" {
		t.Errorf("stat: %+v", fi)
	}
	r = run(t, c, "kitrun-stat /no/such/path", "")
	if r.status != 0 || !strings.Contains(r.stdout, `"exists":false`) {
		t.Errorf("missing path: %+v", r)
	}
}

func TestSignalRequest(t *testing.T) {
	c := start(t, "/bin/sh").client(t)
	sess, _ := c.NewSession()
	defer sess.Close()
	var out syncBuffer
	sess.Stdout = &out
	if err := sess.Start("echo started; exec sleep 100"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "started") })
	if err := sess.Signal(ssh.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "INT" {
		t.Errorf("got %v, want death by SIGINT", err)
	}
}

// Closing a session kills its command (and its process group).
func TestClosedSessionKillsCommand(t *testing.T) {
	c := start(t, "/bin/sh").client(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	sess, _ := c.NewSession()
	var out bytes.Buffer
	sess.Stdout = &out
	// A shell that ignores HUP, so that it takes the SIGKILL.
	if err := sess.Start(fmt.Sprintf("trap '' HUP; sleep 1000 & echo $! > %s; wait", pidFile)); err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0
	})
	sess.Close()
	waitFor(t, func() bool { return syscall.Kill(pid, 0) != nil })
}

func TestPtyShell(t *testing.T) {
	c := start(t, "/bin/sh").client(t)
	sess, _ := c.NewSession()
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	stdin, _ := sess.StdinPipe()
	var out syncBuffer
	sess.Stdout = &out
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	if err := sess.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	fmt.Fprintf(stdin, "tty; echo TERM=$TERM; stty size; exit 7\n")
	err := sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Errorf("shell ended with %v, want status 7", err)
	}
	got := out.String()
	for _, want := range []string{"/dev/pts/", "TERM=xterm", "50 132"} {
		if !strings.Contains(got, want) {
			t.Errorf("pty shell output lacks %q:\n%s", want, got)
		}
	}
}

func TestPtyExec(t *testing.T) {
	c := start(t, "/bin/sh").client(t)
	sess, _ := c.NewSession()
	defer sess.Close()
	sess.RequestPty("vt100", 30, 100, nil)
	out, err := sess.CombinedOutput("tty; stty size")
	if err != nil || !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "30 100") {
		t.Errorf("pty exec: %v, %q", err, out)
	}
	// Built-ins work on a pty too.
	sess, _ = c.NewSession()
	defer sess.Close()
	sess.RequestPty("vt100", 30, 100, nil)
	if out, err := sess.Output("kitrun-ping"); err != nil || string(out) != "pong\n" {
		t.Errorf("pty kitrun-ping: %v, %q", err, out)
	}
}

func TestAuthentication(t *testing.T) {
	s := start(t, "/bin/sh")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)

	// An unknown client key is refused.
	cfg := s.keys.ClientConfig()
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(otherSigner)}
	if c, err := ssh.Dial("tcp", s.addr(), cfg); err == nil {
		c.Close()
		t.Error("an unknown client key was accepted")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unknown key: %v", err)
	}
	if !strings.Contains(s.logs.String(), "refused a public key") {
		t.Errorf("refusal not logged: %q", s.logs.String())
	}

	// No password or keyboard-interactive fallback.
	cfg = s.keys.ClientConfig()
	cfg.Auth = []ssh.AuthMethod{ssh.Password("root"), ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil })}
	if c, err := ssh.Dial("tcp", s.addr(), cfg); err == nil {
		c.Close()
		t.Error("password login accepted")
	}

	// The client refuses a server with another host key.
	cfg = s.keys.ClientConfig()
	cfg.HostKeyCallback = ssh.FixedHostKey(otherSigner.PublicKey())
	if c, err := ssh.Dial("tcp", s.addr(), cfg); err == nil {
		c.Close()
		t.Error("a wrong host key was accepted")
	}

	// Any user name is root.
	cfg = s.keys.ClientConfig()
	cfg.User = "alice"
	c, err := ssh.Dial("tcp", s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := run(t, c, "id -u", ""); r.stdout != strconv.Itoa(os.Getuid())+"\n" {
		t.Errorf("id -u: %+v", r)
	}
}

func TestLoadKeysErrors(t *testing.T) {
	dir := t.TempDir()
	_, _, err := kitsshd.LoadKeys(filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	if err == nil || !strings.Contains(err.Error(), "host key") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing host key: %v", err)
	}
	keys, _ := sshkeys.Generate()
	os.WriteFile(filepath.Join(dir, "host_key"), keys.HostKeyPEM(), 0o600)
	_, _, err = kitsshd.LoadKeys(filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	if err == nil || !strings.Contains(err.Error(), "authorized keys") {
		t.Errorf("missing authorized_keys: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte("# nothing\n"), 0o644)
	_, _, err = kitsshd.LoadKeys(filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	if err == nil || !strings.Contains(err.Error(), "no public key") {
		t.Errorf("empty authorized_keys: %v", err)
	}
}

// OpenSSH's client logs in with the files sshkeys writes, checking the
// host key strictly.
func TestOpenSSHClient(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no OpenSSH client")
	}
	s := start(t, "/bin/sh")
	key, known, err := s.keys.WriteClientFiles(t.TempDir(), fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil {
		t.Fatal(err)
	}
	ssh := func(known string, args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		base := []string{"-F", "/dev/null", "-i", key, "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "GlobalKnownHostsFile=/dev/null", "-p", strconv.Itoa(s.port)}
		cmd := exec.CommandContext(ctx, "ssh", append(base, args...)...)
		cmd.Stdin = strings.NewReader("from stdin\n")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := ssh(known, "root@127.0.0.1", "kitrun-ping"); out != "pong\n" || code != 0 {
		t.Errorf("kitrun-ping: %q, exit %d", out, code)
	}
	if out, code := ssh(known, "root@127.0.0.1", "cat; exit 5"); out != "from stdin\n" || code != 5 {
		t.Errorf("cat; exit 5: %q, exit %d", out, code)
	}
	if out, code := ssh(known, "-tt", "root@127.0.0.1", "tty"); !strings.Contains(out, "/dev/pts/") || code != 0 {
		t.Errorf("ssh -tt tty: %q, exit %d", out, code)
	}
	// Another known host key: OpenSSH refuses to connect.
	other, _ := sshkeys.Generate()
	_, badKnown, _ := other.WriteClientFiles(t.TempDir(), fmt.Sprintf("127.0.0.1:%d", s.port))
	if out, code := ssh(badKnown, "root@127.0.0.1", "kitrun-ping"); code != 255 || !strings.Contains(out, "HOST IDENTIFICATION HAS CHANGED") {
		t.Errorf("wrong known host: %q, exit %d", out, code)
	}
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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// With KeyFiles, keys replaced while the server runs (kitinit's reseed of
// a restored snapshot) take effect for the next connection: the old host
// key and the old client key are refused from then on.
func TestKeyFilesReload(t *testing.T) {
	dir := t.TempDir()
	hostKey, authorized := filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys")
	write := func(k *sshkeys.Keys) {
		for p, data := range map[string][]byte{hostKey: k.HostKeyPEM(), authorized: k.AuthorizedKey()} {
			tmp := p + ".new"
			os.WriteFile(tmp, data, 0o600)
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, _ := sshkeys.Generate()
	fresh, _ := sshkeys.Generate()
	write(old)
	load := kitsshd.KeyFiles(hostKey, authorized)
	host, keys, err := load()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := kitsshd.New(kitsshd.Config{HostKey: host, AuthorizedKeys: keys, Keys: load})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	dial := func(k *sshkeys.Keys) error {
		cfg := k.ClientConfig()
		cfg.Timeout = 10 * time.Second
		c, err := ssh.Dial("tcp", l.Addr().String(), cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(old); err != nil {
		t.Fatalf("before the change: %v", err)
	}
	write(fresh)
	if err := dial(fresh); err != nil {
		t.Errorf("fresh keys refused: %v", err)
	}
	if err := dial(old); err == nil {
		t.Error("the old keys are still accepted after the change")
	}
	// The old client key against the fresh host key alone is refused too.
	cfg := old.ClientConfig()
	cfg.HostKeyCallback = ssh.FixedHostKey(fresh.HostPublicKey())
	cfg.Timeout = 10 * time.Second
	if c, err := ssh.Dial("tcp", l.Addr().String(), cfg); err == nil {
		c.Close()
		t.Error("the old client key is still authorized")
	}
	// Keys that cannot be loaded drop the connection.
	os.Remove(authorized)
	if err := dial(fresh); err == nil {
		t.Error("a connection was served without loadable keys")
	}
}
