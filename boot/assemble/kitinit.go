package assemble

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kitrun/kitrun/boot/gobuild"
	"github.com/kitrun/kitrun/boot/initproto"
)

// buildKitinit builds kitinit for the target arch from kitrun's own source.
// Building it (rather than embedding prebuilt binaries) keeps one source of
// truth for every arch in the table; gobuild's cache makes it free when
// nothing changed.
func (b *builder) buildKitinit(ctx context.Context) (string, error) {
	return b.buildKitrunProgram(ctx, "boot", "kitinit", "cmd", "kitinit")
}

// buildKitrunProgram builds one of kitrun's own guest programs, given by
// its package directory inside kitrun's source.
func (b *builder) buildKitrunProgram(ctx context.Context, pkg ...string) (string, error) {
	root, err := gobuild.KitrunRoot(b.opts.KitrunSource)
	if err != nil {
		return "", err
	}
	return b.gob.Build(ctx, filepath.Join(append([]string{root}, pkg...)...), b.arch.GOARCH)
}

// The guest SSH server: where it is installed, its service name, and where
// it expects the keys that the host delivers at each boot (hypervisor/vm
// appends them to the initramfs; no key is ever part of the image).
const (
	kitsshdPath        = "/usr/sbin/kitsshd"
	sshService         = "sshd"
	sshHostKey         = "/etc/kitrun/ssh/host_key"
	sshAuthorizedKeys  = "/etc/kitrun/ssh/authorized_keys"
	sshDefaultPort     = 22
	sshReadyTimeout    = 10 * time.Second
	sshReadyInterval   = 10 * time.Millisecond
	sshRestartBackoff  = 100 * time.Millisecond
	sshRestartMaxDelay = 5 * time.Second
)

func (b *builder) sshEnabled() bool { return b.spec.SSH.Enabled || b.opts.SSH }

func (b *builder) sshPort() int {
	if p := b.spec.SSH.Port; p > 0 {
		return p
	}
	return sshDefaultPort
}

// addSSHServer installs kitsshd, built from kitrun's source like kitinit,
// and supervises it as the service "sshd", ready once its port accepts.
func (b *builder) addSSHServer(ctx context.Context) error {
	for _, sv := range b.spec.Services {
		if sv.Name == sshService {
			return posErr(sv.Pos, fmt.Errorf("service name %q is kitrun's SSH server's (ssh: is on); rename this service", sshService))
		}
	}
	if _, ok := b.files[kitsshdPath]; ok {
		return posErr(b.spec.SSH.Pos, fmt.Errorf("%s is already in the image; kitrun's SSH server is installed there", kitsshdPath))
	}
	bin, err := b.buildKitrunProgram(ctx, "boot", "kitsshd", "cmd", "kitsshd")
	if err != nil {
		return posErr(b.spec.SSH.Pos, err)
	}
	if err := b.addHostFile(kitsshdPath, bin, 0o755, "kitsshd"); err != nil {
		return err
	}
	port := strconv.Itoa(b.sshPort())
	b.config.Services = append(b.config.Services, initproto.Service{
		Name: sshService,
		Exec: initproto.Exec{Path: kitsshdPath, Args: []string{
			"-port", port, "-host-key", sshHostKey, "-authorized-keys", sshAuthorizedKeys}},
		Restart: initproto.Restart{Policy: initproto.RestartAlways,
			Backoff: initproto.Duration(sshRestartBackoff), MaxBackoff: initproto.Duration(sshRestartMaxDelay)},
		Ready: &initproto.Ready{TCP: "127.0.0.1:" + port,
			Timeout: initproto.Duration(sshReadyTimeout), Interval: initproto.Duration(sshReadyInterval)},
	})
	return nil
}
