//go:build linux

package hyperv_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kitrun/kitrun/hypervisor/hyperv"
	"github.com/kitrun/kitrun/hypervisor/hyperv/hypervfake"
)

// sshHost is a stand-in for Windows' OpenSSH server: it runs the exec
// request's command, which must be PowerShell as the SSH runner starts
// it, as the fake host's PowerShell, with the session's stdio.
func sshHost(t *testing.T, h *hypervfake.Host) (addr, keyFile, knownHostsFile string, hostKey ssh.Signer) {
	t.Helper()
	_, hpriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ = ssh.NewSignerFromKey(hpriv)
	cpub, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	clientPub, _ := ssh.NewPublicKey(cpub)
	block, err := ssh.MarshalPrivateKey(cpriv, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile = filepath.Join(dir, "key")
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)

	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) != string(clientPub.Marshal()) {
			return nil, io.EOF
		}
		return nil, nil
	}}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	addr = l.Addr().String()
	knownHostsFile = filepath.Join(dir, "known_hosts")
	os.WriteFile(knownHostsFile, []byte(knownhosts.Line([]string{addr}, hostKey.PublicKey())+"\n"), 0o600)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSH(t, c, cfg, h)
		}
	}()
	return addr, keyFile, knownHostsFile, hostKey
}

func serveSSH(t *testing.T, c net.Conn, cfg *ssh.ServerConfig, h *hypervfake.Host) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" {
					req.Reply(req.Type == "signal", nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload)
				fields := strings.Fields(string(req.Payload[4 : 4+n]))
				if len(fields) == 0 || fields[0] != "powershell.exe" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				cmd := exec.Command(h.Pwsh, fields[1:]...)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
					if ee, ok := err.(*exec.ExitError); ok {
						status = uint32(ee.ExitCode())
					}
				}
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

// TestSSHRunner runs the driver over SSH: the host key pinned from
// known_hosts, the script and an upload on the session's stdin, a relay
// on its stdio.
func TestSSHRunner(t *testing.T) {
	h := hypervfake.Start(t)
	addr, key, known, _ := sshHost(t, h)
	r, err := hyperv.NewSSHRunner("admin@"+addr, key, known, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := &hyperv.PowerShellDriver{Runner: r, Switch: hyperv.DefaultSwitch}
	ctx := context.Background()
	if err := d.Verify(ctx); err != nil {
		t.Fatalf("Verify over SSH: %v", err)
	}
	data := strings.Repeat("x", 3<<20)
	up, err := d.Upload(ctx, "kitrun-ssh-00000001", "disk.vhdx", strings.NewReader(data), int64(len(data)))
	if err != nil || up.Size != int64(len(data)) {
		t.Fatalf("Upload over SSH: %+v, %v", up, err)
	}
	if s, err := d.Status(ctx, "kitrun-ssh-00000001"); err != nil || s.Found {
		t.Errorf("Status = %+v, %v", s, err)
	}

	// A relay: the fake's pipe is a unix socket; this one echoes lines
	// upper-cased.
	pipe := h.PipeSocket(hyperv.PipeName("kitrun-ssh-00000001", 1))
	go func() {
		time.Sleep(200 * time.Millisecond) // the relay waits for the pipe
		l, err := net.Listen("unix", pipe)
		if err != nil {
			return
		}
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			io.WriteString(c, strings.ToUpper(sc.Text())+"\n")
		}
	}()
	s, err := d.OpenCOM(ctx, "kitrun-ssh-00000001", 1)
	if err != nil {
		t.Fatalf("OpenCOM over SSH: %v", err)
	}
	io.WriteString(s, "ping\n")
	line, err := bufio.NewReader(s).ReadString('\n')
	if err != nil || line != "PING\n" {
		t.Errorf("relay answered %q, %v", line, err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

// TestSSHHostKeyPinned refuses a host whose key is not the one in
// known_hosts.
func TestSSHHostKeyPinned(t *testing.T) {
	h := hypervfake.Start(t)
	addr, key, _, _ := sshHost(t, h)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	bad := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(bad, []byte(knownhosts.Line([]string{addr}, otherSigner.PublicKey())+"\n"), 0o600)
	r, err := hyperv.NewSSHRunner("admin@"+addr, key, bad, "")
	if err != nil {
		t.Fatal(err)
	}
	d := &hyperv.PowerShellDriver{Runner: r}
	if err := d.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("a host with another key: %v", err)
	}
	if len(h.Calls()) != 0 {
		t.Error("a script ran on a host whose key did not match")
	}
}
