package fake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	"golang.org/x/crypto/ssh"

	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/kitsshd"
)

// ExecFunc answers one command run in the guest over SSH: what it writes
// to stdout and stderr reaches the client, and it returns the exit status.
type ExecFunc func(command string, stdin io.Reader, stdout, stderr io.Writer) int

// ServeSSH serves the image's SSH port (published by the host, as for a
// real guest) with kitrun's own SSH server, kitsshd, keyed as a kitinit
// guest is: the host key and the authorized client key come from this
// boot's seed (hypervisor.Spec.Seed). Every command is answered by exec;
// a shell request fails. It returns once the server listens; the server
// ends with the machine.
func (g *Guest) ServeSSH(exec ExecFunc) error {
	port := g.Image.Manifest.SSH
	if port == 0 {
		return fmt.Errorf("image %s has no SSH server", g.Image.Manifest.Name)
	}
	files, err := seedFiles(g.Spec.Seed)
	if err != nil {
		return err
	}
	hostPEM, ok := files[kitsshd.DefaultHostKey]
	if !ok {
		return fmt.Errorf("the seed holds no host key (%s): the host booted without SSH", kitsshd.DefaultHostKey)
	}
	host, err := ssh.ParsePrivateKey(hostPEM)
	if err != nil {
		return fmt.Errorf("seed host key: %w", err)
	}
	authorized := kitsshd.ParseAuthorizedKeys(files[kitsshd.DefaultAuthorizedKeys])
	srv, err := kitsshd.New(kitsshd.Config{HostKey: host, AuthorizedKeys: authorized, Exec: exec})
	if err != nil {
		return err
	}
	for _, gl := range g.m.listeners {
		if gl.port == port {
			go srv.Serve(gl.l)
			return nil
		}
	}
	return fmt.Errorf("the SSH port %d is not published", port)
}

// seedFiles reads a seed archive's regular files, by absolute path.
func seedFiles(seed []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	r := cpio.NewReader(bytes.NewReader(seed))
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("seed archive: %w", err)
		}
		if rec.Type() == cpio.TypeReg {
			files[path.Clean("/"+rec.Name)] = rec.Data
		}
	}
}
