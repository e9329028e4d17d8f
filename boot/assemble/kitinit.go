package assemble

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kitrun/kitrun/boot/cpio"
	"github.com/kitrun/kitrun/boot/guestbin"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
)

// addKitrunProgram puts one of kitrun's own guest programs in the image at
// guest: the copy embedded in kitrun, or one built from a kitrun checkout
// whose sources of it differ (see guestbin.Get). Where it came from goes
// into the manifest (Guest) and the result (GuestCheckout).
func (b *builder) addKitrunProgram(ctx context.Context, program, guest string) error {
	bin, err := guestbin.Get(ctx, program, b.arch, guestbin.Options{Checkout: b.opts.KitrunSource, CacheDir: b.opts.CacheDir})
	if err != nil {
		return err
	}
	b.put(&entry{rec: cpio.File(guest, bin.Data, 0o755), sum: bin.SHA256, origin: program})
	b.guest = append(b.guest, image.GuestProgram{Name: program, Path: guest, SHA256: bin.SHA256, From: bin.From})
	if bin.From == guestbin.FromSource {
		b.guestCheckout = bin.Checkout
	}
	return nil
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

// addSSHServer installs kitsshd, kitrun's own like kitinit, and supervises
// it as the service "sshd", ready once its port accepts.
func (b *builder) addSSHServer(ctx context.Context) error {
	for _, sv := range b.spec.Services {
		if sv.Name == sshService {
			return posErr(sv.Pos, fmt.Errorf("service name %q is kitrun's SSH server's (ssh: is on); rename this service", sshService))
		}
	}
	if _, ok := b.files[kitsshdPath]; ok {
		return posErr(b.spec.SSH.Pos, fmt.Errorf("%s is already in the image; kitrun's SSH server is installed there", kitsshdPath))
	}
	if err := b.addKitrunProgram(ctx, guestbin.Kitsshd, kitsshdPath); err != nil {
		return posErr(b.spec.SSH.Pos, err)
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
