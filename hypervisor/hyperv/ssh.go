package hyperv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHRunner runs PowerShell on a Windows host through its OpenSSH server.
// The host key is pinned from a known_hosts file: an unknown or changed
// key is refused, never accepted on first use.
type SSHRunner struct {
	// Addr is host:port; User the account (Hyper-V Administrators or an
	// administrator).
	Addr, User string
	// Pwsh is the remote program (powershell.exe or pwsh).
	Pwsh   string
	config *ssh.ClientConfig

	mu     sync.Mutex
	client *ssh.Client
}

// ParseHost reads user@host[:port]; the port defaults to 22.
func ParseHost(s string) (user, addr string, err error) {
	user, host, ok := strings.Cut(s, "@")
	if !ok || user == "" || host == "" {
		return "", "", fmt.Errorf("bad host %q; use user@host or user@host:port", s)
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "22")
	}
	return user, host, nil
}

// NewSSHRunner makes a runner for user@host[:port], authenticating with
// the private key in keyFile and checking the host key against
// knownHostsFile.
func NewSSHRunner(host, keyFile, knownHostsFile, pwsh string) (*SSHRunner, error) {
	user, addr, err := ParseHost(host)
	if err != nil {
		return nil, err
	}
	if knownHostsFile == "" {
		return nil, errors.New("hyperv: host= needs known-hosts=PATH, a known_hosts file holding the Windows host's key (ssh-keyscan HOST > FILE, then check the key); host keys are never accepted unseen")
	}
	hostKeys, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("hyperv: known-hosts: %w", err)
	}
	if keyFile == "" {
		return nil, errors.New("hyperv: host= needs key=PATH, the private key the Windows host's OpenSSH accepts")
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("hyperv: key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("hyperv: key %s: %w", keyFile, err)
	}
	if pwsh == "" {
		pwsh = "powershell.exe"
	}
	return &SSHRunner{
		Addr: addr, User: user, Pwsh: pwsh,
		config: &ssh.ClientConfig{
			User:            user,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: hostKeys,
			Timeout:         15 * time.Second,
		},
	}, nil
}

func (r *SSHRunner) String() string { return "ssh " + r.User + "@" + r.Addr }

// Local implements Runner.
func (r *SSHRunner) Local() bool { return false }

// shared returns the shared connection, dialling it if needed.
func (r *SSHRunner) shared(ctx context.Context) (*ssh.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		return r.client, nil
	}
	c, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	r.client = c
	go func(cl *ssh.Client) {
		cl.Wait()
		r.drop(cl)
	}(c)
	return c, nil
}

// drop forgets the shared connection cl (it failed).
func (r *SSHRunner) drop(cl *ssh.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == cl {
		r.client = nil
		cl.Close()
	}
}

// dial makes a connection.
func (r *SSHRunner) dial(ctx context.Context) (*ssh.Client, error) {
	d := net.Dialer{Timeout: r.config.Timeout}
	conn, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return nil, fmt.Errorf("hyperv: ssh %s: %w", r.Addr, err)
	}
	conn.SetDeadline(time.Now().Add(r.config.Timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, r.Addr, r.config)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("hyperv: ssh %s: %w", r.Addr, err)
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// Close closes the connection.
func (r *SSHRunner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return nil
	}
	err := r.client.Close()
	r.client = nil
	return err
}

// Exec implements Runner: one SSH session per script. The command goes
// through the account's default shell (cmd.exe on Windows' OpenSSH), so
// it is kept far below cmd.exe's 8191 characters: the script itself comes
// on standard input.
//
// A script with input of its own (an upload, a relay, which lives as long
// as its VM) gets a connection of its own: Windows' OpenSSH allows 10
// sessions per connection (MaxSessions), and a few VMs' relays would take
// them all. Other scripts share one connection, redialled once if it
// broke.
func (r *SSHRunner) Exec(ctx context.Context, script string, stdin io.Reader, stdout, stderr io.Writer) error {
	var s *ssh.Session
	if stdin != nil {
		c, err := r.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if s, err = c.NewSession(); err != nil {
			return fmt.Errorf("hyperv: ssh session: %w", err)
		}
	} else {
		for try := 0; ; try++ {
			c, err := r.shared(ctx)
			if err != nil {
				return err
			}
			if s, err = c.NewSession(); err == nil {
				break
			}
			r.drop(c)
			if try == 1 {
				return fmt.Errorf("hyperv: ssh session: %w", err)
			}
		}
	}
	defer s.Close()
	s.Stdout, s.Stderr = stdout, stderr
	in, err := s.StdinPipe()
	if err != nil {
		return err
	}
	cmd := r.Pwsh + " " + strings.Join(PwshArgs(), " ")
	if err := s.Start(cmd); err != nil {
		return fmt.Errorf("hyperv: ssh: starting %s: %w", r.Pwsh, err)
	}
	go feed(in, script, stdin)
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		<-done
		return ctx.Err()
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Status: ee.ExitStatus()}
	}
	return err
}
