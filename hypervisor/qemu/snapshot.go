package qemu

// Saved machine states (hypervisor.Snapshotter): QEMU's migration stream
// written to a file, and read back by a QEMU started with the same
// guest-visible configuration and `-incoming defer`. QEMU 7.2 has no
// `file:` migration URI (8.2 added it), so the stream goes through
// `exec:cat`. Per-run settings the guest does not see stay per run: the
// published ports are the new QEMU's -netdev hostfwd (user networking's
// listeners are host-side and not part of the stream), the QMP socket and
// console/channel fds are new. The guest's boot files are kept with the
// state, since QEMU's fw_cfg and loader describe them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/hypervisor"
)

// Files of a saved state directory.
const (
	savedState  = "state"      // the migration stream
	savedInitrd = "initrd.img" // the initramfs the guest booted from
)

// snapshotFormat changes when what the key covers or the directory's
// layout does, so that older states are rebuilt, not misused.
const snapshotFormat = "kitrun-qemu-snapshot-1"

// migrationDeadline bounds saving or loading a state. A 256 MiB guest's
// stream is tens of MiB and takes well under a second here; a wedged
// migration must still end.
const migrationDeadline = 2 * time.Minute

var _ hypervisor.Snapshotter = (*Backend)(nil)

// snapshotUnsupported says why spec cannot be snapshotted, or nil.
func snapshotUnsupported(spec hypervisor.Spec, boot *bootMedia) error {
	switch {
	case !boot.direct:
		return &hypervisor.UnsupportedError{Backend: "qemu", What: "snapshot a " + boot.format.Name + " boot", Hint: "snapshots are of direct kernel boots; boot the image without a disk format, or set `snapshot: false`"}
	case spec.NoChannel:
		return &hypervisor.UnsupportedError{Backend: "qemu", What: "snapshot a machine without kitinit's event channel", Hint: "a restored guest gets its fresh state over the channel"}
	}
	return nil
}

// snapshotReleaseUnsupported says why QEMU version cannot snapshot
// machines of type mt (a's machineName), or nil.
func snapshotReleaseUnsupported(mt *machineType, a arch.Arch, machineName, version string) error {
	if mt.snapshotSince == (qemuRelease{}) && mt.snapshotStalledOn == (qemuRelease{}) {
		return nil
	}
	r, err := parseRelease(version)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("snapshot a %s %s machine with QEMU %s", a.Name, machineName, r)
	if r.before(mt.snapshotSince) {
		return &hypervisor.UnsupportedError{Backend: "qemu", What: what,
			Hint: fmt.Sprintf("QEMU before %s leaves %s out of the saved state, so a restored guest can stall; it boots cold instead", mt.snapshotSince, mt.snapshotGap)}
	}
	if mt.snapshotStalledOn != (qemuRelease{}) && !mt.snapshotStalledOn.before(r) {
		return &hypervisor.UnsupportedError{Backend: "qemu", What: what,
			Hint: fmt.Sprintf("on QEMU %s and older %s; it boots cold instead", mt.snapshotStalledOn, mt.snapshotStall)}
	}
	return nil
}

// checkRestorable checks a spec that restores a saved state.
func checkRestorable(spec hypervisor.Spec, boot *bootMedia) error {
	if err := snapshotUnsupported(spec, boot); err != nil {
		return err
	}
	if len(spec.Seed) > 0 {
		return fmt.Errorf("qemu: a restored machine takes its per-run files after the restore, not as a boot seed")
	}
	if strings.ContainsAny(spec.RestoreFrom, "'\n") {
		return fmt.Errorf("qemu: saved state path %q has a quote or newline", spec.RestoreFrom)
	}
	for _, f := range []string{savedState, savedInitrd} {
		if _, err := os.Stat(filepath.Join(spec.RestoreFrom, f)); err != nil {
			return fmt.Errorf("qemu: saved state: %w", err)
		}
	}
	return nil
}

// SnapshotKey implements hypervisor.Snapshotter: the SHA-256 of the
// format, the QEMU binary (path, size, modification time) and its
// version, the image digest and QEMU's arguments with the per-run ones
// (runtime paths, published ports) left out.
func (b *Backend) SnapshotKey(ctx context.Context, spec hypervisor.Spec) (string, error) {
	p, err := b.plan(ctx, spec)
	if err != nil {
		return "", err
	}
	if err := snapshotUnsupported(spec, p.boot); err != nil {
		return "", err
	}
	fi, err := os.Stat(p.binary)
	if err != nil {
		return "", err
	}
	version, err := b.Version(ctx, spec.Image.Arch)
	if err != nil {
		return "", err
	}
	if err := snapshotReleaseUnsupported(&p.mt, spec.Image.Arch, p.machineName, version); err != nil {
		return "", err
	}
	bm := *p.boot
	bm.initrd = "INITRD" // per run: the image's initramfs with this run's seed
	p.boot = &bm
	// Where QMP, the console and the channel connect differs per run
	// (socket paths, fd numbers, TCP ports) and is no part of the state.
	channel := ""
	if p.mt.hw.Channel != "" {
		channel = "CHANNEL"
	}
	args := b.args(p, spec.Image.Networked(), nil, "QMP", "CONSOLE", channel)
	key, _ := json.Marshal(struct {
		Format, Binary, Version, Image string
		Size                           int64
		Mtime                          int64
		Args                           []string
	}{snapshotFormat, p.binary, version, spec.Image.Digest, fi.Size(), fi.ModTime().UnixNano(), args})
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:]), nil
}

// SaveState implements hypervisor.Snapshotter.
func (b *Backend) SaveState(ctx context.Context, hm hypervisor.Machine, dir string) error {
	m, ok := hm.(*machine)
	if !ok {
		return fmt.Errorf("qemu: %T is not a QEMU machine", hm)
	}
	if m.boot == nil || !m.boot.direct {
		return &hypervisor.UnsupportedError{Backend: "qemu", What: "save the state of a disk boot"}
	}
	if strings.ContainsAny(dir, "'\n") {
		return fmt.Errorf("qemu: state directory %q has a quote or newline", dir)
	}
	ctx, cancel := context.WithTimeout(ctx, migrationDeadline)
	defer cancel()
	if _, err := m.runQMP(ctx, "stop", nil); err != nil {
		return fmt.Errorf("pausing the machine: %w", err)
	}
	// QEMU's default rate limit (32 MiB/s) is for live migration over a
	// network; this machine is paused and the stream goes to a file.
	if _, err := m.runQMP(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}); err != nil {
		return fmt.Errorf("migration parameters: %w", err)
	}
	if _, err := m.runQMP(ctx, "migrate", map[string]any{"uri": "exec:cat > '" + filepath.Join(dir, savedState) + "'"}); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	if err := m.waitMigration(ctx, "saving the state"); err != nil {
		return err
	}
	return copyFile(m.boot.initrd, filepath.Join(dir, savedInitrd))
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	return atomicfile.WriteFrom(to, 0o600, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
}

// restoreState loads the saved state in dir into a machine started with
// `-incoming defer`, which then runs. A failure stops the machine.
func (m *machine) restoreState(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), migrationDeadline)
	defer cancel()
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvRestoreStart, Detail: dir})
	err := func() error {
		if _, err := m.runQMP(ctx, "migrate-incoming", map[string]any{"uri": "exec:cat '" + filepath.Join(dir, savedState) + "'"}); err != nil {
			return fmt.Errorf("loading the state: %w", err)
		}
		if err := m.waitMigration(ctx, "loading the state"); err != nil {
			return err
		}
		// QEMU runs the guest once the stream is loaded (no -S); make
		// sure, so that "restored" means running.
		for {
			st, err := m.RunState(ctx)
			if err != nil {
				return fmt.Errorf("run state after loading: %w", err)
			}
			if st == "running" {
				return nil
			}
			if st == "paused" || st == "postmigrate" {
				if _, err := m.runQMP(ctx, "cont", nil); err != nil {
					return fmt.Errorf("resuming after loading: %w", err)
				}
				continue
			}
			if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
				return fmt.Errorf("guest not running after loading (state %s): %w", st, err)
			}
		}
	}()
	if err != nil {
		if m.exited() {
			err = fmt.Errorf("%w (qemu exited)", err)
		}
		m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvRestoreFailed, Detail: err.Error()})
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.ForceOff(fctx)
		cancel()
		return
	}
	m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvRestored})
}

// waitMigration polls query-migrate until the migration completed or
// failed, or ctx ends (then the error says the status it was in).
func (m *machine) waitMigration(ctx context.Context, what string) error {
	status := "unknown"
	for {
		out, err := m.runQMP(ctx, "query-migrate", nil)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: no end within %s; migration status %s", what, migrationDeadline, status)
			}
			return fmt.Errorf("%s: query-migrate: %w", what, err)
		}
		var resp struct {
			Return struct {
				Status string `json:"status"`
				Error  string `json:"error-desc"`
			} `json:"return"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return fmt.Errorf("%s: query-migrate: %w", what, err)
		}
		if resp.Return.Status != "" {
			status = resp.Return.Status
		}
		switch status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("%s: migration %s: %s", what, status, resp.Return.Error)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("%s: no end within %s; migration status %s", what, migrationDeadline, status)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
