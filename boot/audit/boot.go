package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
	"github.com/kitrun/kitrun/testcases"
)

// BootPorts builds specPath with kitrun's SSH server forced in, boots it on
// backend, waits for all-ready and reads its listening ports; the machine
// is powered off before it returns. It returns the guest SSH port too,
// which the audit itself added and AddPorts leaves out.
func BootPorts(ctx context.Context, specPath string, backend hypervisor.Backend, opts assemble.Options, timeout time.Duration) ([]Port, int, error) {
	img, err := testcases.BuildImage(ctx, specPath, testcases.BuildOptions{Platform: opts.Platform, SSH: true, CacheDir: opts.CacheDir})
	if err != nil {
		return nil, 0, err
	}
	m, err := testcases.Boot(ctx, backend, img, testcases.BootOptions{Options: vm.Options{SSH: true}})
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		m.Shutdown(sctx, 10*time.Second)
	}()
	if err := m.WaitReady(ctx, timeout); err != nil {
		return nil, 0, fmt.Errorf("%s did not become ready (stage %s): %w", img.Manifest.Name, m.Stage(), err)
	}
	ports, err := ListeningPorts(ctx, func(ctx context.Context, p string) ([]byte, error) {
		fi, err := m.Stat(ctx, p)
		if err != nil {
			return nil, err
		}
		if !fi.Exists {
			return nil, errors.New("not in the guest")
		}
		return fi.Content, nil
	})
	return ports, img.Manifest.SSH, err
}
