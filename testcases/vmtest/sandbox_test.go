package vmtest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/ociimage/ocibuild"
	"github.com/kitrun/kitrun/testcases/vmtest"
)

// TestSandboxEscape boots, in a real VM, the escape program three ways:
// as an image service in the default sandbox (read-only root), which must
// contain every attempt; as a Go service with sandbox: true (shared,
// writable root), whose pid namespace, capabilities and seccomp filter must
// hold; and as a plain service, which must escape, proving the attempts
// are real.
func TestSandboxEscape(t *testing.T) {
	for _, a := range []string{"x86_64", "aarch64"} {
		t.Run(a, func(t *testing.T) {
			ar, err := arch.Lookup(a)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			src, _ := filepath.Abs("../cmd/escape")
			img, err := ocibuild.ProgramImage(src, ar.GOARCH, "escape")
			if err != nil {
				t.Fatal(err)
			}
			if err := tarball.WriteToFile(filepath.Join(dir, "escape.tar"), nil, img); err != nil {
				t.Fatal(err)
			}
			spec := `version: 1
name: sandbox-escape
kernel: {package: linux-image-cloud, cmdline: quiet}
services:
  - name: jail
    image: docker-archive:escape.tar
    readonly: true
    resources: {memory: 64M, cpu: 0.5}
    ready: {log: 'escape: contained', timeout: 90s}
  - name: boxed
    go: ` + src + `
    sandbox: true
    ready: {log: 'escape: (contained|ESCAPED)', timeout: 90s}
  - name: control
    go: ` + src + `
    ready: {log: 'escape: ESCAPED', timeout: 90s}
`
			p := filepath.Join(dir, "escape.yml")
			if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
				t.Fatal(err)
			}
			v := vmtest.Boot(t, p, vmtest.WithArch(a), vmtest.WithTimeout(4*time.Minute))
			for _, want := range []string{
				`\[jail\] escape: contained`,
				`\[boxed\] escape: see other processes: blocked`,
				`\[boxed\] escape: init_module: blocked`,
				`\[boxed\] escape: finit_module: blocked`,
				`\[boxed\] escape: sethostname \(CAP_SYS_ADMIN\): blocked`,
				`\[boxed\] escape: lo down \(CAP_NET_ADMIN\): blocked`,
				`\[boxed\] escape: mount: blocked`,
				`\[control\] escape: see other processes: ESCAPED`,
				`\[control\] escape: write the root: ESCAPED`,
				`\[control\] escape: sethostname \(CAP_SYS_ADMIN\): ESCAPED`,
				`\[control\] escape: reach the image root \(/init\): ESCAPED`,
			} {
				v.ExpectConsole(want, 10*time.Second)
			}
			if m := regexp.MustCompile(`\[jail\] .*ESCAPED`).FindString(v.Console()); m != "" {
				t.Errorf("the sandboxed image service escaped: %s", m)
			}
			for _, l := range regexp.MustCompile(`\[jail\] escape: .*`).FindAllString(v.Console(), -1) {
				t.Log(l)
			}
		})
	}
}
