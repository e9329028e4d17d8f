// Package sshkeys makes the key material of one run of an SSH-enabled guest:
// an ed25519 host key for the guest's kitsshd and an ed25519 client key for
// the host. Keys are made fresh for every boot and never stored in an image,
// so images stay reproducible and cacheable, and a key that leaks opens one
// VM that is gone by the time anybody could use it.
//
// The host key is pinned: clients verify it with ssh.FixedHostKey (Go) or a
// known_hosts file (OpenSSH), never by trusting whatever the server presents.
package sshkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// User is the account kitsshd logs every client into.
const User = "root"

// Keys is one run's key pair set.
type Keys struct {
	hostSigner, clientSigner ssh.Signer
	// The PEM forms are made once: each marshalling draws fresh random
	// check bytes.
	hostPEM, clientPEM []byte
}

// Generate makes a fresh host key and client key.
func Generate() (*Keys, error) {
	k := &Keys{}
	var err error
	if k.hostSigner, k.hostPEM, err = generate("kitrun guest host key"); err != nil {
		return nil, fmt.Errorf("generating the SSH host key: %w", err)
	}
	if k.clientSigner, k.clientPEM, err = generate("kitrun client key"); err != nil {
		return nil, fmt.Errorf("generating the SSH client key: %w", err)
	}
	return k, nil
}

func generate(comment string) (ssh.Signer, []byte, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return nil, nil, err
	}
	return signer, pem.EncodeToMemory(block), nil
}

// HostKeyPEM is the host private key in OpenSSH PEM form, for the guest
// (kitsshd -host-key).
func (k *Keys) HostKeyPEM() []byte { return k.hostPEM }

// HostPublicKey is the host key to pin (ssh.FixedHostKey).
func (k *Keys) HostPublicKey() ssh.PublicKey { return k.hostSigner.PublicKey() }

// AuthorizedKey is the client public key as an authorized_keys line, newline
// terminated, for the guest (kitsshd -authorized-keys).
func (k *Keys) AuthorizedKey() []byte { return ssh.MarshalAuthorizedKey(k.clientSigner.PublicKey()) }

// ClientSigner authenticates a Go SSH client.
func (k *Keys) ClientSigner() ssh.Signer { return k.clientSigner }

// ClientKeyPEM is the client private key in OpenSSH PEM form, for `ssh -i`.
func (k *Keys) ClientKeyPEM() []byte { return k.clientPEM }

// ClientConfig is a Go client configuration that logs in as root with the
// client key and accepts only the pinned host key.
func (k *Keys) ClientConfig() *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(k.clientSigner)},
		HostKeyCallback: ssh.FixedHostKey(k.HostPublicKey()),
	}
}

// KnownHostsLine is the OpenSSH known_hosts line for the guest reached at
// addr, "host:port" ("[127.0.0.1]:PORT ssh-ed25519 AAAA…"), without
// newline.
func (k *Keys) KnownHostsLine(addr string) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, k.HostPublicKey())
}

// WriteClientFiles writes the client private key and a known_hosts file
// into dir, both mode 0600 (OpenSSH refuses a key others can read), so that
//
//	ssh -i KEY -o UserKnownHostsFile=KNOWN -p PORT root@HOST
//
// logs in and verifies the guest reached at addr ("HOST:PORT").
func (k *Keys) WriteClientFiles(dir, addr string) (keyPath, knownHostsPath string, err error) {
	keyPath = filepath.Join(dir, "id_ed25519")
	knownHostsPath = filepath.Join(dir, "known_hosts")
	for p, data := range map[string][]byte{
		keyPath:        k.ClientKeyPEM(),
		knownHostsPath: []byte(k.KnownHostsLine(addr) + "\n"),
	} {
		if err := writeFile0600(p, data); err != nil {
			return "", "", err
		}
	}
	return keyPath, knownHostsPath, nil
}

// writeFile0600 writes data with mode 0600 even if the file existed with
// wider permissions.
func writeFile0600(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
