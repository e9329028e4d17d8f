package vm

// Snapshots: boot an image's machine once to all-ready, save its state,
// and start later boots of the same machine from that state.
//
// A restored guest holds the state of the boot the snapshot was taken
// from: its SSH keys, its kernel's CRNG, its wall clock. So a restore is
// not ready when the hypervisor has loaded the state (stage restored): the
// host first sends kitinit this run's state (initproto.Reseed: fresh SSH
// keys as files, entropy, the host's clock), kitinit applies it and
// answers reseeded, and only then is the VM ready (all-ready). kitsshd
// reads its keys again for every connection after they change, so the
// snapshot's keys are refused from then on.
//
// The cache holds one directory per snapshot key (the backend's
// SnapshotKey: image digest, guest-visible machine configuration, memory,
// CPUs, arch, hypervisor binary and version). A snapshot is built under an
// exclusive lock of KEY.lock, so that concurrent boots of one machine
// build it once, in a temporary directory renamed into place whole; its
// meta.json records the key and each file's size and SHA-256, checked
// before every use, so a damaged or mismatched snapshot is rebuilt, never
// half-used.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/flock"
	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/sshkeys"
	"github.com/kitrun/kitrun/hypervisor"
)

// Snapshots is a cache of saved machine states (kitrun's cache's
// snapshots directory).
type Snapshots struct {
	Dir string
	// BuildTimeout bounds the cold boot to all-ready that makes a
	// snapshot; DefaultSnapshotBuildTimeout when 0.
	BuildTimeout time.Duration
}

// DefaultSnapshotBuildTimeout is how long the boot that makes a snapshot
// may take to reach all-ready.
const DefaultSnapshotBuildTimeout = 3 * time.Minute

// reseedTimeout bounds a restored guest's answer to the reseed.
const reseedTimeout = time.Minute

// metaFile describes a snapshot directory's files.
const metaFile = "meta.json"

// SnapshotCache is the snapshot cache under kitrun's cache directory.
func SnapshotCache(cacheDir string) *Snapshots {
	return &Snapshots{Dir: filepath.Join(cacheDir, "snapshots")}
}

// SnapshotUse says how a boot with Options.Snapshots went.
type SnapshotUse struct {
	// Restored: the machine started from a snapshot.
	Restored bool `json:"restored"`
	// Key is the snapshot's key (empty when none could be used).
	Key string `json:"key,omitempty"`
	// Built: this boot made the snapshot first (a cold boot to
	// all-ready, BuildTime long, saving included).
	Built     bool          `json:"built,omitempty"`
	BuildTime time.Duration `json:"build_time,omitempty"`
	// Rebuilt says why an existing snapshot was not used (damaged, made
	// for another key).
	Rebuilt string `json:"rebuilt,omitempty"`
	// Cold says why the boot did not use a snapshot.
	Cold string `json:"cold,omitempty"`
}

// SnapshotUse says how the VM used Options.Snapshots.
func (v *VM) SnapshotUse() SnapshotUse { return v.snapUse }

// snapshotMeta is a snapshot directory's meta.json.
type snapshotMeta struct {
	Key   string               `json:"key"`
	Image string               `json:"image"`
	Built time.Time            `json:"built"`
	Files map[string]fileCheck `json:"files"`
}

type fileCheck struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// boot starts img from its snapshot, building the snapshot first if there
// is none; a boot that cannot use a snapshot boots cold.
func (s *Snapshots) boot(ctx context.Context, backend hypervisor.Backend, img *image.Image, opts Options) (*VM, error) {
	opts.Snapshots = nil
	cold := func(why string) (*VM, error) {
		v, err := boot(ctx, backend, img, opts, "")
		if v != nil {
			v.snapUse = SnapshotUse{Cold: why}
		}
		return v, err
	}
	sn, ok := backend.(hypervisor.Snapshotter)
	if !ok {
		return cold("the " + backend.Name() + " backend cannot save machine states")
	}
	if opts.NoEventChannel {
		return cold("a restored guest needs the event channel")
	}
	if len(opts.ExtraFiles) > 0 {
		// The snapshot's services started without them; SSH's own files
		// (added by setupSSH later) are the reseed's business.
		return cold("extra file " + opts.ExtraFiles[0].Path + " must be there at boot")
	}
	key, err := sn.SnapshotKey(ctx, snapshotSpec(img, opts))
	var ue *hypervisor.UnsupportedError
	if errors.As(err, &ue) {
		return cold(ue.Error())
	}
	if err != nil {
		return nil, err
	}
	dir, use, err := s.ensure(ctx, backend, sn, img, opts, key)
	if err != nil {
		return nil, err
	}
	v, err := boot(ctx, backend, img, opts, dir)
	if v != nil {
		use.Restored, use.Key = true, key
		v.snapUse = use
	}
	return v, err
}

// snapshotSpec is the part of a boot's spec its snapshot depends on.
func snapshotSpec(img *image.Image, opts Options) hypervisor.Spec {
	return hypervisor.Spec{Image: img, Format: opts.Format, Resources: opts.Resources.WithDefaults(),
		ExtraCmdline: opts.ExtraCmdline}
}

// ensure returns the directory of a valid snapshot for key, building it
// under the key's lock when there is none (or a bad one).
func (s *Snapshots) ensure(ctx context.Context, backend hypervisor.Backend, sn hypervisor.Snapshotter, img *image.Image, opts Options, key string) (string, SnapshotUse, error) {
	var use SnapshotUse
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", use, fmt.Errorf("snapshot cache: %w", err)
	}
	dir := filepath.Join(s.Dir, key)
	lctx, cancel := context.WithTimeout(ctx, s.buildTimeout()+migrationWait)
	lock, err := flock.Wait(lctx, dir+".lock", flock.Exclusive, 0o644)
	cancel()
	if err != nil {
		return "", use, fmt.Errorf("snapshot cache: %w", err)
	}
	defer lock.Unlock()
	defer s.prune(key)
	err = checkSnapshot(dir, key)
	if err == nil {
		touch(dir)
		return dir, use, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		use.Rebuilt = err.Error()
	}
	start := time.Now()
	if _, err := s.build(ctx, backend, sn, img, opts, key, dir); err != nil {
		return "", use, err
	}
	use.Built, use.BuildTime = true, time.Since(start)
	return dir, use, nil
}

// SnapshotKeep is how long a snapshot nobody has used is kept. A state is
// tens of MiB, and every change of an image or of QEMU makes a new key.
const SnapshotKeep = 72 * time.Hour

// touch records a use of a snapshot: its directory's modification time.
func touch(dir string) {
	now := time.Now()
	os.Chtimes(dir, now, now)
}

// prune removes the snapshots other than keep that nobody has used for
// SnapshotKeep, each under its lock (one being built or checked now is
// left alone). A restore reads its state after the lock is released, but
// within seconds of its use being recorded, long before SnapshotKeep.
func (s *Snapshots) prune(keep string) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || name == keep || !isKey(name) {
			continue
		}
		dir := filepath.Join(s.Dir, name)
		if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < SnapshotKeep {
			continue
		}
		l, ok, err := flock.TryLock(dir+".lock", flock.Exclusive, 0o644)
		if err != nil || !ok {
			continue
		}
		if os.RemoveAll(dir) == nil {
			os.Remove(dir + ".lock") // waiters retry on the new file (flock)
		}
		l.Unlock()
	}
}

// isKey says whether name is a snapshot key (64 hex digits).
func isKey(name string) bool {
	if len(name) != 64 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// migrationWait is added to the build timeout for the lock wait: the
// holder may be saving the state.
const migrationWait = 2 * time.Minute

func (s *Snapshots) buildTimeout() time.Duration {
	if s.BuildTimeout > 0 {
		return s.BuildTimeout
	}
	return DefaultSnapshotBuildTimeout
}

// build boots img cold to all-ready, saves its state into a temporary
// directory and renames that to dir (replacing a bad snapshot). It returns
// the build boot's SSH keys (nil without SSH), which no restored VM may
// accept.
func (s *Snapshots) build(ctx context.Context, backend hypervisor.Backend, sn hypervisor.Snapshotter, img *image.Image, opts Options, key, dir string) (*sshkeys.Keys, error) {
	bopts := Options{Resources: opts.Resources, Format: opts.Format, ExtraCmdline: opts.ExtraCmdline,
		SSH: opts.SSH, RuntimeDir: opts.RuntimeDir}
	v, err := boot(ctx, backend, img, bopts, "")
	if err != nil {
		return nil, fmt.Errorf("building the snapshot: %w", err)
	}
	defer v.Kill()
	if err := v.WaitReady(ctx, s.buildTimeout()); err != nil {
		return nil, fmt.Errorf("building the snapshot: %w", err)
	}
	tmp, err := atomicfile.TempDir(dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // gone once renamed
	if err := sn.SaveState(ctx, v.Machine, tmp); err != nil {
		return nil, fmt.Errorf("building the snapshot: %w", err)
	}
	meta := snapshotMeta{Key: key, Image: img.Manifest.Name, Built: time.Now().UTC(), Files: map[string]fileCheck{}}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		c, err := checkFile(filepath.Join(tmp, e.Name()))
		if err != nil {
			return nil, err
		}
		meta.Files[e.Name()] = c
	}
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := atomicfile.Write(filepath.Join(tmp, metaFile), b, 0o644); err != nil {
		return nil, err
	}
	// The directory stays 0700 (TempDir): the state is the guest's
	// memory, the build boot's keys and whatever its services hold.
	// A bad snapshot in the way is moved aside first: rename cannot
	// replace a directory that has files.
	if _, err := os.Stat(dir); err == nil {
		old, err := atomicfile.TempDir(dir)
		if err != nil {
			return nil, err
		}
		if err := os.Rename(dir, filepath.Join(old, "old")); err != nil {
			return nil, err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return v.SSHKeys(), atomicfile.SyncDir(s.Dir)
}

// checkSnapshot says whether dir holds a whole snapshot for key: an error
// wrapping os.ErrNotExist when there is none, another when it is damaged
// or made for another key.
func checkSnapshot(dir, key string) error {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(dir); derr == nil {
				return fmt.Errorf("snapshot %s has no %s", dir, metaFile)
			}
		}
		return err
	}
	var meta snapshotMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Errorf("snapshot %s: %s: %w", dir, metaFile, err)
	}
	if meta.Key != key {
		return fmt.Errorf("snapshot %s was made for key %s", dir, meta.Key)
	}
	if len(meta.Files) == 0 {
		return fmt.Errorf("snapshot %s lists no files", dir)
	}
	for name, want := range meta.Files {
		got, err := checkFile(filepath.Join(dir, name))
		if err != nil {
			// %v: a file missing from a snapshot is damage, not "none".
			return fmt.Errorf("snapshot %s: %v", dir, err)
		}
		if got != want {
			return fmt.Errorf("snapshot %s: %s is damaged (%d bytes, sha256 %.12s; made as %d bytes, %.12s)", dir, name, got.Size, got.SHA256, want.Size, want.SHA256)
		}
	}
	return nil
}

func checkFile(path string) (fileCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileCheck{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fileCheck{}, err
	}
	return fileCheck{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// reseed gives a restored guest this run's state once the hypervisor has
// loaded the snapshot; kitinit's reseeded answer makes the VM ready
// (handle). A guest that does not answer in time fails the boot at the
// stage it reached.
func (v *VM) reseed(restored chan Event, files []byte) {
	if _, err := v.wait(context.Background(), restored); err != nil {
		return // gone: follow reports how
	}
	entropy := make([]byte, 64)
	rand.Read(entropy)
	cmd, err := initproto.Reseed{UnixNano: time.Now().UnixNano(), Entropy: entropy, Files: files}.Command()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = v.Send(ctx, cmd)
		cancel()
	}
	if err != nil {
		v.mu.Lock()
		v.failLocked(&GuestError{Stage: v.stage, Detail: "sending the reseed: " + err.Error()})
		v.mu.Unlock()
		return
	}
	t := time.NewTimer(reseedTimeout)
	defer t.Stop()
	select {
	case <-v.ready:
	case <-v.failed:
	case <-v.exited:
	case <-t.C:
		v.mu.Lock()
		v.failLocked(&TimeoutError{Stage: v.stage, After: reseedTimeout, Console: v.consoleTailLocked()})
		v.mu.Unlock()
	}
}
