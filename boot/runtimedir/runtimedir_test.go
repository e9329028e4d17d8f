package runtimedir

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/procid"
)

// A child is this test binary run again with childEnv set: it makes its
// runtime directory and the kinds of temporary files kitrun makes, starts
// a daemon in its own process group, says so on stdout, and waits to be
// killed. Its report is "dir outdir-tempfile daemon-pid".
const childEnv = "KITRUN_RUNTIMEDIR_TEST_CHILD"

func TestMain(m *testing.M) {
	if out := os.Getenv(childEnv); out != "" {
		if err := child(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		time.Sleep(time.Hour) // until the test kills it
	}
	os.Exit(m.Run())
}

func child(outDir string) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	vm, err := MkdirTemp("vm-")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(vm, "id_ed25519"), []byte("a private key"), 0o600); err != nil {
		return err
	}
	half, err := atomicfile.Create(filepath.Join(outDir, "initrd.img"), 0o644)
	if err != nil {
		return err
	}
	half.Write([]byte("half written"))
	daemon := 0
	if runtime.GOOS != "windows" {
		cmd := exec.Command("sleep", "300")
		if _, err := StartGroup(cmd); err != nil {
			return err
		}
		daemon = cmd.Process.Pid
	}
	if os.Getenv(childRecordsEnv) != "" {
		for _, w := range []string{"w1", "w2"} {
			if _, err := Record("widget", []byte(w)); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%s %s %d\n", dir, half.Name(), daemon)
	return nil
}

// childRecordsEnv makes the child also record two widgets (see Record).
const childRecordsEnv = "KITRUN_RUNTIMEDIR_TEST_RECORDS"

type childProc struct {
	cmd      *exec.Cmd
	dir      string
	tempFile string
	daemon   int
}

func startChild(t *testing.T, xdg, outDir string) *childProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+outDir, "XDG_RUNTIME_DIR="+xdg)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("child said %q", l)
		}
		d, _ := strconv.Atoi(f[2])
		if d > 0 {
			t.Cleanup(func() { killTestGroup(d) })
		}
		return &childProc{cmd: cmd, dir: f[0], tempFile: f[1], daemon: d}
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not report within 30s")
	}
	return nil
}

// TestSweepAfterKill9 is the crash this package exists for: a process
// killed with SIGKILL runs no cleanup; the next start removes what it left
// (its runtime directory with a private key in it, a half-written file in
// an output directory) and kills its daemon, while a live process's
// directory and files are untouched.
func TestSweepAfterKill9(t *testing.T) {
	xdg, outDir := t.TempDir(), t.TempDir()
	base := filepath.Join(xdg, "kitrun")
	dead := startChild(t, xdg, outDir)
	live := startChild(t, xdg, outDir)
	for _, p := range []string{dead.dir, dead.tempFile, live.dir, live.tempFile} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	if filepath.Dir(dead.dir) != base || filepath.Dir(live.dir) != base {
		t.Fatalf("runtime dirs %s, %s are not in %s", dead.dir, live.dir, base)
	}
	dead.cmd.Process.Kill() // SIGKILL: no cleanup runs
	dead.cmd.Wait()

	// The next start: the first Dir of a process sweeps, as does the first
	// write into an output directory.
	next := &root{base: base, self: procid.Self()}
	mine, err := next.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := atomicfile.SweepStale(outDir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dead.dir, dead.tempFile} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the sweep: %v", p, err)
		}
	}
	for _, p := range []string{live.dir, live.tempFile, mine} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a live process's %s was swept: %v", p, err)
		}
	}
	if dead.daemon > 0 {
		waitGone(t, dead.daemon)
		if !procid.Of(live.daemon).Running() {
			t.Errorf("the live process's daemon %d was killed", live.daemon)
		}
	}
	// A second sweep finds nothing more.
	if removed, err := next.Sweep(); err != nil || len(removed) != 0 {
		t.Errorf("second sweep removed %v, %v", removed, err)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	id := procid.Of(pid)
	deadline := time.Now().Add(10 * time.Second)
	for id.Running() {
		if time.Now().After(deadline) {
			t.Fatalf("the dead owner's daemon %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDirIsPrivateAndRemovable(t *testing.T) {
	base := filepath.Join(t.TempDir(), "kitrun")
	r := &root{base: base, self: procid.Self()}
	dir, err := r.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != procid.Self().String() {
		t.Errorf("dir %s is not named by this process's procid", dir)
	}
	for _, p := range []string{base, dir} {
		if st, err := os.Stat(p); err != nil || (runtime.GOOS != "windows" && st.Mode().Perm() != 0o700) {
			t.Errorf("%s: %v %v, want a 0700 directory", p, st.Mode(), err)
		}
	}
	d, err := r.MkdirTemp("vm-")
	if err != nil || filepath.Dir(d) != dir || !strings.HasPrefix(filepath.Base(d), "vm-") {
		t.Fatalf("MkdirTemp = %s, %v", d, err)
	}
	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove left %s: %v", dir, err)
	}
	if again, err := r.Dir(); err != nil || again != dir {
		t.Errorf("Dir after Remove = %s, %v", again, err)
	}
}

func TestSweepLeavesForeignNames(t *testing.T) {
	base := t.TempDir()
	for _, n := range []string{"notes", "99999999", "x-1"} {
		os.Mkdir(filepath.Join(base, n), 0o700)
	}
	os.WriteFile(filepath.Join(base, "99999999-1"), nil, 0o600) // a file, not a process's dir
	r := &root{base: base, self: procid.Self()}
	if removed, err := r.Sweep(); err != nil || len(removed) != 0 {
		t.Fatalf("swept %v, %v", removed, err)
	}
}
