package sshkeys

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestKeysAreFreshAndConsistent(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if bytes.Equal(a.HostKeyPEM(), b.HostKeyPEM()) || bytes.Equal(a.AuthorizedKey(), b.AuthorizedKey()) {
		t.Fatal("two runs got the same keys")
	}
	if a.HostPublicKey().Type() != ssh.KeyAlgoED25519 || a.ClientSigner().PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key types %s, %s", a.HostPublicKey().Type(), a.ClientSigner().PublicKey().Type())
	}
	// The host key PEM parses to the pinned public key.
	host, err := ssh.ParsePrivateKey(a.HostKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(host.PublicKey().Marshal(), a.HostPublicKey().Marshal()) {
		t.Error("host key PEM and host public key differ")
	}
	// The authorized_keys line is the client key.
	pub, _, _, _, err := ssh.ParseAuthorizedKey(a.AuthorizedKey())
	if err != nil || !bytes.Equal(pub.Marshal(), a.ClientSigner().PublicKey().Marshal()) {
		t.Errorf("authorized key %q: %v", a.AuthorizedKey(), err)
	}
	client, err := ssh.ParsePrivateKey(a.ClientKeyPEM())
	if err != nil || !bytes.Equal(client.PublicKey().Marshal(), pub.Marshal()) {
		t.Errorf("client key PEM: %v", err)
	}
	if !strings.HasPrefix(string(a.ClientKeyPEM()), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Errorf("client key is not in OpenSSH form:\n%s", a.ClientKeyPEM())
	}
	if h := a.HostPublicKey(); a.ClientConfig().HostKeyCallback("127.0.0.1:22", nil, h) != nil {
		t.Error("ClientConfig refuses the pinned host key")
	}
	if a.ClientConfig().HostKeyCallback("127.0.0.1:22", nil, b.HostPublicKey()) == nil {
		t.Error("ClientConfig accepts another host key")
	}
}

func TestWriteClientFiles(t *testing.T) {
	k, _ := Generate()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "id_ed25519"), []byte("old"), 0o644)
	key, known, err := k.WriteClientFiles(dir, "127.0.0.1:2222")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{key, known} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", p, err, st.Mode())
		}
	}
	if b, _ := os.ReadFile(key); !bytes.Equal(b, k.ClientKeyPEM()) {
		t.Error("key file content")
	}
	line := k.KnownHostsLine("127.0.0.1:2222")
	if !strings.HasPrefix(line, "[127.0.0.1]:2222 ssh-ed25519 ") {
		t.Errorf("known_hosts line %q", line)
	}
	cb, err := knownhosts.New(known)
	if err != nil {
		t.Fatal(err)
	}
	addr := &fakeAddr{"127.0.0.1:2222"}
	if err := cb("127.0.0.1:2222", addr, k.HostPublicKey()); err != nil {
		t.Errorf("known_hosts refuses the host key: %v", err)
	}
	other, _ := Generate()
	if err := cb("127.0.0.1:2222", addr, other.HostPublicKey()); err == nil {
		t.Error("known_hosts accepts another key")
	}
}

type fakeAddr struct{ s string }

func (a *fakeAddr) Network() string { return "tcp" }
func (a *fakeAddr) String() string  { return a.s }
