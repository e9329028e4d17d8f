package lifecycle

import (
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHTarget is how to reach a running VM's SSH server: its address, this
// boot's client key and the boot's pinned host key.
type SSHTarget struct {
	Addr           string
	KeyPath        string
	KnownHostsPath string
}

// SSH returns the SSH target of a running VM.
func (s *Store) SSH(name string) (*SSHTarget, error) {
	v, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if v.Err != nil {
		return nil, v.Err
	}
	switch v.State.State {
	case Booting, Ready, Paused:
	default:
		return nil, &StateError{Name: name, State: v.State.State, Op: "ssh"}
	}
	if v.Meta.GuestSSHPort == 0 {
		return nil, fmt.Errorf("VM %s's image has no SSH server; add `ssh: true` to its spec", name)
	}
	if v.Meta.SSHAddr == "" {
		return nil, fmt.Errorf("VM %s has no SSH keys recorded (started by an older kitrun?)", name)
	}
	return &SSHTarget{
		Addr:           v.Meta.SSHAddr,
		KeyPath:        s.Path(name, SSHKeyFile),
		KnownHostsPath: s.Path(name, SSHKnownHostsFile),
	}, nil
}

// ClientConfig logs in as root with the boot's key and accepts only the
// boot's host key, as pinned in its known_hosts file.
func (t *SSHTarget) ClientConfig() (*ssh.ClientConfig, error) {
	b, err := os.ReadFile(t.KeyPath)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.KeyPath, err)
	}
	hostKeys, err := knownhosts.New(t.KnownHostsPath)
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
	}, nil
}
