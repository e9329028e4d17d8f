package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// TestSnapshotRestore boots an SSH image once to all-ready and saves its
// state, then restores it twice: each restored VM must be ready only after
// its reseed, present its own fresh host key, accept its own client key,
// refuse the snapshot's keys, and have the host's wall clock, not the
// snapshot's. A damaged snapshot is rebuilt, not used.
func TestSnapshotRestore(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	img := qemutest.BuildSpec(t, a, sshSpec(t))
	snaps := &vm.Snapshots{Dir: t.TempDir()}
	backend := &qemu.Backend{}
	opts := vm.Options{SSH: true, Snapshots: snaps}
	opts.Accel = "tcg"
	ctx := within(5 * time.Minute)

	start := time.Now()
	key, old, err := snaps.BuildSnapshot(ctx, backend, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot %.12s built in %s", key, time.Since(start).Round(time.Millisecond))
	if old == nil {
		t.Fatal("the build boot had no SSH keys")
	}
	st, err := os.Stat(filepath.Join(snaps.Dir, key, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state file: %d bytes", st.Size())
	// The snapshot's clock must be stale by the time of the restores, so
	// that a guest that kept it is caught.
	time.Sleep(8 * time.Second)

	restore := func(name string) *vm.VM {
		t.Helper()
		v := bootImage(t, img, opts)
		if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		use := v.SnapshotUse()
		if !use.Restored || use.Built || use.Key != key {
			t.Errorf("%s: snapshot use %+v; want restored from %.12s, not built", name, use, key)
		}
		var kinds []string
		var restored, ready time.Duration
		for _, m := range v.Timeline() {
			kinds = append(kinds, m.Stage.Kind)
			switch m.Stage.Kind {
			case hypervisor.EvRestored:
				restored = m.Host
			case initproto.EvAllReady:
				ready = m.Host
			}
		}
		for _, want := range []string{hypervisor.EvRestoreStart, hypervisor.EvRestored, initproto.EvReseeded, initproto.EvAllReady} {
			if !slices.Contains(kinds, want) {
				t.Errorf("%s: timeline %v lacks %s", name, kinds, want)
			}
		}
		if slices.Contains(kinds, initproto.EvInitStart) {
			t.Errorf("%s: timeline %v has a boot's init-start: not restored", name, kinds)
		}
		t.Logf("%s: restored at %s, ready at %s", name, restored.Round(time.Millisecond), ready.Round(time.Millisecond))
		return v
	}
	v1 := restore("first restore")
	v2 := restore("second restore")

	for i, v := range []*vm.VM{v1, v2} {
		// Exec pins the VM's own host key: success means the guest
		// presents this run's key and accepts this run's client key.
		r, err := v.Exec(within(30*time.Second), "/usr/bin/demo check /etc/hostname sshguest", nil)
		if err != nil || r.Status != 0 {
			t.Errorf("restore %d: exec: %+v, %v", i+1, r, err)
		}
		fi, err := v.Stat(within(30*time.Second), vm.GuestHostKey)
		if err != nil {
			t.Fatalf("restore %d: stat: %v", i+1, err)
		}
		// The reseed sets the clock before it writes the keys.
		if skew := time.Since(time.Unix(0, fi.MTime)); skew < -3*time.Second || skew > 5*time.Second {
			t.Errorf("restore %d: the fresh host key's guest time is %s off the host's: the clock was not set", i+1, skew.Round(time.Millisecond))
		}
		addr, err := v.SSHAddr()
		if err != nil {
			t.Fatal(err)
		}
		// The snapshot's client key is refused.
		cfg := old.ClientConfig()
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		cfg.Timeout = 20 * time.Second
		if c, err := ssh.Dial("tcp", addr, cfg); err == nil {
			c.Close()
			t.Errorf("restore %d accepts the snapshot's client key", i+1)
		}
		// And the guest does not present the snapshot's host key.
		cfg = v.SSHKeys().ClientConfig()
		cfg.HostKeyCallback = ssh.FixedHostKey(old.HostPublicKey())
		cfg.Timeout = 20 * time.Second
		if c, err := ssh.Dial("tcp", addr, cfg); err == nil {
			c.Close()
			t.Errorf("restore %d presents the snapshot's host key", i+1)
		}
	}
	if k1, k2 := v1.SSHKeys().HostPublicKey().Marshal(), v2.SSHKeys().HostPublicKey().Marshal(); string(k1) == string(k2) {
		t.Error("both restores have the same host key")
	}
	v1.Shutdown(context.Background(), 5*time.Second)
	v2.Shutdown(context.Background(), 5*time.Second)

	// A damaged state file is detected and the snapshot rebuilt.
	state := filepath.Join(snaps.Dir, key, "state")
	f, err := os.OpenFile(state, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("damage"), st.Size()/2)
	f.Close()
	v3 := bootImage(t, img, opts)
	if err := v3.WaitReady(context.Background(), bootTimeout); err != nil {
		t.Fatal(err)
	}
	if use := v3.SnapshotUse(); !use.Built || use.Rebuilt == "" || !use.Restored {
		t.Errorf("after damage: snapshot use %+v; want rebuilt, then restored", use)
	} else {
		t.Logf("after damage: %s", use.Rebuilt)
	}
	v3.Shutdown(context.Background(), 5*time.Second)

	// Two boots of one machine at once, on an empty cache: one builds the
	// snapshot, the other waits for it; both restore.
	opts.Snapshots = &vm.Snapshots{Dir: t.TempDir()}
	var (
		wg   sync.WaitGroup
		uses [2]vm.SnapshotUse
	)
	for i := range uses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var console qemutest.Buffer
			o := opts
			o.Console = &console
			v, err := vm.Boot(context.Background(), backend, img, o)
			if err != nil {
				t.Errorf("concurrent boot %d: %v", i, err)
				return
			}
			defer v.Shutdown(context.Background(), 5*time.Second)
			if err := v.WaitReady(context.Background(), bootTimeout); err != nil {
				t.Errorf("concurrent boot %d: %v\n%s", i, err, console.String())
			}
			uses[i] = v.SnapshotUse()
		}()
	}
	wg.Wait()
	if !uses[0].Restored || !uses[1].Restored || uses[0].Built == uses[1].Built {
		t.Errorf("concurrent boots: %+v, %+v; want both restored, exactly one built", uses[0], uses[1])
	}
}
