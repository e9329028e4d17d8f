//go:build unix

package testcases

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/hypervisor/fake"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestFullDiskIsReported: when the results cannot be written (here a
// process whose file-size limit is 0: every write to a file fails with
// EFBIG, as on a full disk), each lost file is said at once, the run
// fails, and the verdicts still stand.
func TestFullDiskIsReported(t *testing.T) {
	sp := specFor(t, false, []string{"hello"}, nil)
	dir := writeTree(t, map[string]string{
		"010_ok/spec.yml": sp,
		"010_ok/test.yml": "expect:\n  - services_ready: [hello]\n  - console: hello world\n",
	})
	// The child cannot write a file at all: its image must be in the cache
	// before it starts.
	qemutest.Require(t, arch.Host().Name)
	plat, err := (&fake.Backend{}).Platform(arch.Host())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildImage(context.Background(), filepath.Join(dir, "010_ok", "spec.yml"), BuildOptions{Platform: plat}); err != nil {
		t.Fatal(err)
	}
	results := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFullDisk$")
	cmd.Env = append(os.Environ(), "KITRUN_TEST_FULLDISK="+dir+"|"+results)
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{
		"PASS  ok (",
		"kitrun test: results not saved: writing log " + filepath.Join(results, "ok", "console.log") + ": file too large (what follows is not in it)",
		"kitrun test: results not saved: writing log " + filepath.Join(results, "ok", "events.log") + ": file too large",
		"kitrun test: results not saved: writing " + filepath.Join(results, "ok", "result.json") + ": file too large",
		"kitrun test: results not saved: writing " + filepath.Join(results, "ok", "assertions.txt") + ": file too large",
		"kitrun test: results not saved: writing " + filepath.Join(results, "results.json") + ": file too large",
		"kitrun test: results not saved: writing " + filepath.Join(results, "junit.xml") + ": file too large",
		"1 passed, 0 failed, 0 skipped",
		"RUN ERROR: some results could not be saved in " + results,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Each error is said once, not once per checkpoint.
	if n := strings.Count(out, "results not saved: writing "+filepath.Join(results, "results.json")); n != 1 {
		t.Errorf("the results.json error was said %d times:\n%s", n, out)
	}
}

// TestHelperFullDisk is the child of TestFullDiskIsReported.
func TestHelperFullDisk(t *testing.T) {
	arg := os.Getenv("KITRUN_TEST_FULLDISK")
	if arg == "" {
		t.Skip("helper process only")
	}
	dir, results, _ := strings.Cut(arg, "|")
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 0, Max: unix.RLIM_INFINITY}); err != nil {
		t.Fatal(err)
	}
	l := &fakeLauncher{behave: func(string, int) behaviour {
		return behaviour{services: []string{"hello"}, console: []string{"hello world"}}
	}}
	var out strings.Builder
	_, err := Run(context.Background(), Options{Dir: dir, Launcher: l, Out: &lockedWriter{w: &out}, ResultsDir: results, MemBudgetMiB: 4096})
	fmt.Print(out.String())
	fmt.Printf("RUN ERROR: %v\n", err)
}
