package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/spec"
	"github.com/kitrun/kitrun/hypervisor/qemu"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

func TestCheckKernel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	os.WriteFile(p, []byte("CONFIG_BUG_ON_DATA_CORRUPTION=y\nCONFIG_SLAB_FREELIST_HARDENED=m\n# CONFIG_KEXEC is not set\nCONFIG_PROC_KCORE=y\nCONFIG_LSM=\"yama,lockdown\"\nCONFIG_DEFAULT_MMAP_MIN_ADDR=4096\n"), 0o644)
	cfg, err := readKconfig(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]KernelCheck{}
	for _, k := range checkKernel(cfg, "x86_64") {
		got[k.Setting+" "+k.Wanted] = k
	}
	for _, c := range []struct {
		key    string
		actual string
		ok     bool
	}{
		{"CONFIG_BUG_ON_DATA_CORRUPTION y", "y", true},
		{"CONFIG_SLAB_FREELIST_HARDENED y", "m", false}, // a module is not y
		{"CONFIG_KEXEC is not set", "is not set", true},
		{"CONFIG_PROC_KCORE is not set", "y", false},
		{"CONFIG_HIBERNATION is not set", "is not set", true}, // absent
		{"CONFIG_LSM *lockdown*", `"yama,lockdown"`, true},
		{"CONFIG_LSM *landlock*", `"yama,lockdown"`, false},
		{"CONFIG_DEFAULT_MMAP_MIN_ADDR 65536", "4096", false},
	} {
		k, ok := got[c.key]
		if !ok || k.Actual != c.actual || k.OK != c.ok {
			t.Errorf("%s: %+v (present %v), want actual %q ok %v", c.key, k, ok, c.actual, c.ok)
		}
	}
	if _, ok := got["CONFIG_SHADOW_CALL_STACK y"]; ok {
		t.Error("an arm64-only setting was checked for x86_64")
	}
}

// TestAuditSpec audits a spec with an unsandboxed root service and a
// sandboxed one against the real Debian cloud kernel.
func TestAuditSpec(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	p := qemutest.WriteSpec(t, "audited", `version: 1
kernel: {package: linux-image-cloud}
files:
  - {path: /usr/bin/suid, contents: "x", mode: 04755}
services:
  - name: plain
    binary: /bin/true
  - name: boxed
    binary: /bin/true
    sandbox: true
    capabilities: [CAP_NET_BIND_SERVICE]
    user: nobody
`)
	s, err := spec.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), s, assemble.Options{Platform: qemutest.Platform(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.KernelChecks) < 50 || r.KernelPassed == 0 || !strings.HasPrefix(r.Kernel, "6.") {
		t.Errorf("kernel checks: %d, passed %d, kernel %q", len(r.KernelChecks), r.KernelPassed, r.Kernel)
	}
	var lines []string
	for _, f := range r.Findings {
		if f.Kind != "kernel" {
			lines = append(lines, f.Level.String()+" "+f.Kind+" "+f.Subject+": "+f.Detail)
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"high unsandboxed services/plain: runs in the image's root",
		"medium setuid /usr/bin/suid: mode 4755",
		"info capabilities services/boxed: CAP_NET_BIND_SERVICE",
		"info writable services/boxed: the whole image root (shared",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no finding %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "root services/boxed") {
		t.Errorf("boxed runs as nobody, reported as root:\n%s", all)
	}
	if !r.Fails(High) || r.WorstFinding != High {
		t.Errorf("worst %s, want high", r.WorstFinding)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "CONFIG_SLAB_FREELIST_HARDENED") {
		t.Errorf("table: %v\n%s", err, b.String())
	}
}

func TestParseProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
`
	got, err := parseProcNet("tcp", []byte(tcp))
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{{"tcp", "0.0.0.0", 8080}, {"tcp", "127.0.0.1", 22}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v (an established connection is not listening)", got, want)
	}
	tcp6 := "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A\n"
	got, err = parseProcNet("tcp6", []byte(tcp6))
	if err != nil || len(got) != 1 || got[0].Addr != "::1" || got[0].Port != 8080 {
		t.Errorf("tcp6: %+v %v", got, err)
	}
	r := &Report{FindingCounts: map[Level]int{}}
	r.AddPorts([]Port{{"tcp", "0.0.0.0", 8080}, {"tcp", "127.0.0.1", 9090}, {"tcp", "0.0.0.0", 22}}, 22)
	if len(r.Ports) != 2 || r.Findings[0].Level != Low || r.Findings[0].Subject != "tcp 0.0.0.0:8080" || r.Findings[1].Level != Info {
		t.Errorf("findings %+v", r.Findings)
	}
}

// TestBootPorts boots a spec whose service listens on 8080 and finds the
// port in the guest, and not the SSH server the audit brought along.
func TestBootPorts(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	hello, _ := filepath.Abs("../../examples/cmd/hello")
	p := qemutest.WriteSpec(t, "ports", "version: 1\nkernel: {package: linux-image-cloud, cmdline: quiet}\nservices:\n  - name: hello\n    go: "+hello+"\n    args: [-addr, \":8080\"]\n    ready: {tcp: 8080}\n")
	backend := &qemu.Backend{}
	ports, ssh, err := BootPorts(t.Context(), p, backend, assemble.Options{Platform: qemutest.Platform(t, a)}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{FindingCounts: map[Level]int{}}
	r.AddPorts(ports, ssh)
	if len(r.Ports) != 1 || r.Ports[0].Port != 8080 {
		t.Errorf("ports %+v (ssh %d), want only 8080", r.Ports, ssh)
	}
}
