// Package kitsshd is kitrun's guest SSH server: a small server built on
// golang.org/x/crypto/ssh that runs in the guest as an ordinary service
// supervised by kitinit (cmd/kitsshd), so that tests and users can run
// commands in a guest that may hold no shell and no sshd of its own.
//
// Authentication is by public key only, against the keys of an OpenSSH
// authorized_keys file (key options such as command= are ignored). There are
// no accounts: whatever user name the client gives, the session runs as the
// server's own user, root in a kitrun guest.
//
// Sessions support exec (through /bin/sh -c when the image has a shell,
// otherwise by splitting the command into words and running the program
// directly), shell with a pty (when the image has a shell), env,
// window-change and signal requests, and report the real exit status, or the
// signal that killed the command. A command whose session is closed by the
// client (or whose connection drops) is hung up: SIGHUP to its process
// group, SIGKILL a moment later. Built-in commands (kitrun-stat,
// kitrun-ping) need no program in the image. Port forwarding, agent
// forwarding and subsystems (sftp) are refused.
package kitsshd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults of a guest.
const (
	DefaultHostKey        = "/etc/kitrun/ssh/host_key"
	DefaultAuthorizedKeys = "/etc/kitrun/ssh/authorized_keys"
	// DefaultRandomSeed is where the host puts a per-boot random seed for
	// the guest's kernel, next to the keys (CreditSeed, Linux only).
	DefaultRandomSeed = "/etc/kitrun/ssh/random_seed"
	DefaultShell      = "/bin/sh"
	DefaultPath       = "/usr/sbin:/usr/bin:/sbin:/bin"
)

// handshakeTimeout bounds a connection's key exchange and authentication.
const handshakeTimeout = 30 * time.Second

// Config configures a Server.
type Config struct {
	HostKey        ssh.Signer
	AuthorizedKeys []ssh.PublicKey
	// Shell runs commands (Shell -c CMD) and interactive sessions
	// (Shell -l); DefaultShell when empty. When it does not exist, commands
	// are split into words and run directly, and shell requests fail.
	Shell string
	// Path is the PATH commands get, and where a program named without a
	// slash is looked up when there is no shell; DefaultPath when empty.
	Path string
	// Logf reports refused keys and errors; nil logs nothing.
	Logf func(format string, args ...any)
	// Exec, when set, answers every exec request in place of a program
	// (the builtins included) and returns its exit status; shell requests
	// then fail. It lets a guest played by a test (hypervisor/fake) answer
	// commands through this same server, keys and protocol included.
	Exec func(command string, stdin io.Reader, stdout, stderr io.Writer) int
	// Keys, when set, gives the keys for each new connection in place of
	// HostKey and AuthorizedKeys (which then serve until its first
	// answer). A VM restored from a snapshot gets fresh keys while kitsshd
	// runs (kitinit's reseed writes them); a connection whose keys cannot
	// be loaded is dropped, never served with the old ones. See KeyFiles.
	Keys func() (ssh.Signer, []ssh.PublicKey, error)
}

// KeyFiles returns a Config.Keys that reads the two files (LoadKeys),
// again whenever either has been replaced or changed since the last read.
func KeyFiles(hostKeyPath, authorizedKeysPath string) func() (ssh.Signer, []ssh.PublicKey, error) {
	var (
		mu     sync.Mutex
		seen   [2]fileStamp
		host   ssh.Signer
		keys   []ssh.PublicKey
		loaded bool
	)
	return func() (ssh.Signer, []ssh.PublicKey, error) {
		mu.Lock()
		defer mu.Unlock()
		now := [2]fileStamp{stampOf(hostKeyPath), stampOf(authorizedKeysPath)}
		if loaded && now == seen {
			return host, keys, nil
		}
		h, k, err := LoadKeys(hostKeyPath, authorizedKeysPath)
		if err != nil {
			loaded = false
			return nil, nil, err
		}
		host, keys, seen, loaded = h, k, now, true
		return host, keys, nil
	}
}

// fileStamp tells a file's versions apart: a replaced file has a new
// inode, a rewritten one a new time or size.
type fileStamp struct {
	ok    bool
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{ok: true, ino: inodeOf(fi), size: fi.Size(), mtime: fi.ModTime()}
}

// LoadKeys reads the host private key (PEM, OpenSSH or PKCS#8 form) and the
// authorized keys (OpenSSH authorized_keys format). Either file missing, or
// holding no key, is an error.
func LoadKeys(hostKeyPath, authorizedKeysPath string) (ssh.Signer, []ssh.PublicKey, error) {
	pem, err := os.ReadFile(hostKeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("host key: %w", err)
	}
	host, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, nil, fmt.Errorf("host key %s: %w", hostKeyPath, err)
	}
	data, err := os.ReadFile(authorizedKeysPath)
	if err != nil {
		return nil, nil, fmt.Errorf("authorized keys: %w", err)
	}
	keys := ParseAuthorizedKeys(data)
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("authorized keys %s: no public key in it", authorizedKeysPath)
	}
	return host, keys, nil
}

// ParseAuthorizedKeys returns every key of an authorized_keys file; blank,
// comment and unparsable lines are skipped.
func ParseAuthorizedKeys(data []byte) []ssh.PublicKey {
	var keys []ssh.PublicKey
	for len(data) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			break // no parsable line left
		}
		keys = append(keys, k)
		data = rest
	}
	return keys
}

// Server serves SSH connections.
type Server struct {
	cfg Config
	ssh *ssh.ServerConfig

	mu        sync.Mutex
	keysID    string // the keys s.ssh was made for, with Config.Keys (s.ssh is then guarded by mu)
	closed    bool
	listeners map[net.Listener]bool
	conns     map[net.Conn]bool
}

// New makes a server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("kitsshd: no host key")
	}
	if len(cfg.AuthorizedKeys) == 0 {
		return nil, errors.New("kitsshd: no authorized keys")
	}
	if cfg.Shell == "" {
		cfg.Shell = DefaultShell
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	s := &Server{cfg: cfg, listeners: map[net.Listener]bool{}, conns: map[net.Conn]bool{}}
	s.ssh = s.sshConfig(cfg.HostKey, cfg.AuthorizedKeys)
	return s, nil
}

// sshConfig is the server configuration for one set of keys.
func (s *Server) sshConfig(hostKey ssh.Signer, authorizedKeys []ssh.PublicKey) *ssh.ServerConfig {
	authorized := make([][]byte, len(authorizedKeys))
	for i, k := range authorizedKeys {
		authorized[i] = k.Marshal()
	}
	c := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-kitsshd",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			k := key.Marshal()
			for _, a := range authorized {
				if bytes.Equal(a, k) {
					return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
				}
			}
			return nil, errors.New("public key not authorized")
		},
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			if method == "publickey" && err != nil {
				s.logf("refused a public key for %q from %s", c.User(), c.RemoteAddr())
			}
		},
	}
	c.AddHostKey(hostKey)
	return c
}

// connConfig is the configuration a new connection gets: the current
// keys where Config.Keys is set.
func (s *Server) connConfig() (*ssh.ServerConfig, error) {
	if s.cfg.Keys == nil {
		return s.ssh, nil
	}
	host, keys, err := s.cfg.Keys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no authorized keys")
	}
	id := string(host.PublicKey().Marshal())
	for _, k := range keys {
		id += "\x00" + string(k.Marshal())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keysID != id {
		s.ssh, s.keysID = s.sshConfig(host, keys), id
	}
	return s.ssh, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// Serve accepts connections on l until l is closed or Close is called.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[l] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go s.serveConn(c)
	}
}

// Close stops every listener and drops every connection; their running
// commands are hung up.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	return nil
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = true
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	if !s.track(c, true) {
		return
	}
	defer s.track(c, false)
	cfg, err := s.connConfig()
	if err != nil {
		s.logf("dropping a connection from %s: keys: %v", c.RemoteAddr(), err)
		return
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		// Readiness probes connect and hang up; that is not news.
		return
	}
	c.SetDeadline(time.Time{})
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "kitsshd only serves sessions")
			continue
		}
		go s.serveSession(nc)
	}
}
