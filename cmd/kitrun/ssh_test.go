package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

// TestSSHIntoDetachedVM: `kitrun ssh NAME -- CMD` runs CMD with this boot's
// keys, passes its exit status through, and OpenSSH can use the same files.
func TestSSHIntoDetachedVM(t *testing.T) {
	qemutest.Require(t, "x86_64")
	bin := buildKitrun(t)
	state := t.TempDir()
	spec := qemutest.WriteSpec(t, "sshvm", fmt.Sprintf(`
version: 1
kernel: {package: linux-image-cloud, cmdline: quiet}
hostname: sshvm
ssh: true
services:
  - name: hello
    go: %s
    args: [-addr, ":8080"]
    ready: {tcp: 8080}
`, filepath.Join(qemutest.RepoRoot(t), "examples/cmd/hello")))
	run := func(args ...string) (string, int) {
		// The state dir goes right after the command name: for ssh,
		// everything after "--" belongs to the guest.
		full := append([]string{args[0], "--state-dir", state}, args[1:]...)
		out, err := exec.Command(bin, full...).CombinedOutput()
		return string(out), exitCode(err)
	}
	if out, code := run("run", "-d", "--name", "sshvm", "--accel", "tcg", spec); code != 0 {
		t.Fatalf("run -d: exit %d\n%s", code, out)
	}
	defer run("rm", "-f", "sshvm")
	if out, code := run("ssh", "sshvm", "--", "kitrun-ping"); code != 0 || strings.TrimSpace(out) != "pong" {
		t.Errorf("kitrun ssh -- kitrun-ping: exit %d, %q", code, out)
	}
	if out, code := run("ssh", "sshvm", "--", "kitrun-stat", "/etc/hostname"); code != 0 || !strings.Contains(out, `"exists":true`) {
		t.Errorf("kitrun-stat: exit %d, %q", code, out)
	}
	// A missing program: the guest's status (127) is kitrun's.
	if out, code := run("ssh", "sshvm", "--", "/usr/bin/nope"); code != 127 {
		t.Errorf("missing command: exit %d, want 127\n%s", code, out)
	}
	if _, code := run("ssh", "nosuchvm", "--", "kitrun-ping"); code != 20 {
		t.Errorf("unknown VM: exit %d, want 20", code)
	}
	// OpenSSH with the files in the VM's state directory, host key pinned.
	port := strings.TrimSpace(mustRead(t, state, "sshvm"))
	out, err := exec.Command("ssh", "-i", filepath.Join(state, "sshvm", "ssh_key"),
		"-o", "UserKnownHostsFile="+filepath.Join(state, "sshvm", "ssh_known_hosts"),
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", port, "root@127.0.0.1", "kitrun-ping").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "pong" {
		t.Errorf("OpenSSH: %v %q", err, out)
	}
	if out, code := run("stop", "sshvm"); code != 0 {
		t.Errorf("stop: exit %d\n%s", code, out)
	}
	if _, code := run("ssh", "sshvm", "--", "kitrun-ping"); code != 23 {
		t.Errorf("ssh into a stopped VM: exit %d, want 23", code)
	}
}

// mustRead returns the VM's forwarded SSH port from its meta.json.
func mustRead(t *testing.T, state, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, name, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		SSHAddr string `json:"ssh_addr"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.SSHAddr == "" {
		t.Fatalf("no ssh_addr in meta.json: %v", err)
	}
	_, port, _ := net.SplitHostPort(m.SSHAddr)
	return port
}
