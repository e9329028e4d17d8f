package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixture creates the host files specs in these tests refer to.
func fixture(t *testing.T, dir string) {
	t.Helper()
	write := func(name, content string, mode os.FileMode) {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is subject to the umask; the tests depend on
		// exact exec bits.
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("cmd/srv/main.go", "package main\n\nfunc main() {}\n", 0o644)
	write("cmd/srv/main_test.go", "package main\n", 0o644)
	write("cmd/empty/README", "no Go here\n", 0o644)
	write("cmd/tests/x_test.go", "package x\n", 0o644)
	write("bin/tool", "#!/bin/sh\n", 0o755)
	write("bin/data", "data\n", 0o644)
	write("motd", "hello\n", 0o644)
	write("linux.deb", "!<arch>\n", 0o644)
	write("vmlinuz", "kernel", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "modules"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// parseIn parses src as file inside a fresh directory holding the fixture,
// with that directory as working directory so messages carry the short
// file name. It returns the directory too.
func parseIn(t *testing.T, file, src string) (*Spec, error, string) {
	t.Helper()
	dir := t.TempDir()
	fixture(t, dir)
	t.Chdir(dir)
	s, err := ParseBytes(file, []byte(src))
	return s, err, dir
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // default x.yml
		src  string
		want string // $DIR stands for the spec's directory
	}{
		{
			name: "unknown top-level key with suggestion",
			src: `verison: 1
kernel: {package: linux-image-cloud}
`,
			want: `x.yml:1:1: unknown key "verison" in spec; did you mean "version"? valid keys: version, name, hostname, init, kernel, network, onboot, onshutdown, services, files, ssh, format
x.yml:1:1: missing required key "version" in spec`,
		},
		{
			name: "unknown service key with suggestion",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    restrat: always
`,
			want: `x.yml:6:5: unknown key "restrat" in service; did you mean "restart"? valid keys: name, go, binary, command, image, install, args, env, dir, user, group, restart, ready, sandbox, capabilities, readonly, binds, net, resources, seccomp`,
		},
		{
			name: "unknown key without suggestion",
			src: `version: 1
kernel:
  package: linux-image-cloud
  colour: blue
`,
			want: `x.yml:4:3: unknown key "colour" in kernel; valid keys: package, deb, image, modules_dir, cmdline, modules`,
		},
		{
			name: "timeout on a service",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    timeout: 5s
`,
			want: `x.yml:6:5: unknown key "timeout" in service; did you mean "ready.timeout"? valid keys: name, go, binary, command, image, install, args, env, dir, user, group, restart, ready, sandbox, capabilities, readonly, binds, net, resources, seccomp`,
		},
		{
			name: "misspelt key that belongs elsewhere",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    timout: 5s
`,
			want: `x.yml:6:5: unknown key "timout" in service; did you mean "ready.timeout"? valid keys: name, go, binary, command, image, install, args, env, dir, user, group, restart, ready, sandbox, capabilities, readonly, binds, net, resources, seccomp`,
		},
		{
			name: "merge keys",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - &web
    name: web
    command: /usr/bin/web
  - <<: *web
    name: api
`,
			want: `x.yml:7:5: merge keys (<<) are not supported in service; write the keys out
x.yml:7:5: service has no program; set exactly one of go, binary, command, image`,
		},
		{
			name: "scalar where a list of mappings is expected",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - web
onboot: prepare
`,
			want: `x.yml:4:5: services must be a list of mappings, found a scalar "web"
x.yml:5:9: onboot must be a list of mappings, found a scalar "prepare"`,
		},
		{
			name: "list where a mapping is expected",
			src: `version: 1
kernel: [linux-image-cloud]
`,
			want: `x.yml:2:9: kernel must be a mapping, found a list`,
		},
		{
			name: "document is not a mapping",
			src: `- version: 1
`,
			want: `x.yml:1:1: spec must be a mapping with at least version: 1 and kernel:, found a list`,
		},
		{
			name: "empty file",
			src:  "# nothing yet\n",
			want: `x.yml:1:1: spec is empty; it must be a mapping with at least version: 1 and kernel:`,
		},
		{
			name: "missing required keys",
			src: `name: demo
onboot:
  - command: /usr/bin/prep
`,
			want: `x.yml:1:1: missing required key "version" in spec
x.yml:1:1: missing required key "kernel" in spec
x.yml:3:5: missing required key "name" in onboot task`,
		},
		{
			name: "version",
			src: `version: 2
kernel: {package: linux-image-cloud}
`,
			want: `x.yml:1:10: version must be 1`,
		},
		{
			name: "bad durations",
			src: `version: 1
kernel: {package: linux-image-cloud}
onboot:
  - name: prep
    command: /usr/bin/prep
    timeout: 0s
services:
  - name: web
    command: /usr/bin/web
    restart: {backoff: soon}
    ready:
      file: /run/web.ready
      timeout: 5x
      interval: [1s]
`,
			want: `x.yml:6:14: timeout: "0s" must be greater than zero; use Go syntax like 500ms, 5s, 1m
x.yml:10:24: restart.backoff: "soon" is not a duration; use Go syntax like 500ms, 5s, 1m
x.yml:13:16: ready.timeout: "5x" is not a duration; use Go syntax like 500ms, 5s, 1m
x.yml:14:17: ready.interval must be a duration, found a list`,
		},
		{
			name: "two probe kinds",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    ready:
      tcp: 8080
      log: listening
`,
			want: `x.yml:8:7: ready.tcp and ready.log are mutually exclusive; set exactly one of tcp, unix, file, exec, log`,
		},
		{
			name: "no probe kind",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    ready:
      timeout: 5s
`,
			want: `x.yml:7:7: ready has no probe; set exactly one of tcp, unix, file, exec, log`,
		},
		{
			name: "bad regexp",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    ready:
      log: "listening on (port"
`,
			want: "x.yml:7:12: ready.log: \"listening on (port\" is not a valid regular expression: missing closing ): `listening on (port`; use Go RE2 syntax",
		},
		{
			name: "bad ports",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: a
    command: /usr/bin/a
    ready: {tcp: 70000}
  - name: b
    command: /usr/bin/b
    ready: {tcp: localhost}
  - name: c
    command: /usr/bin/c
    ready: {tcp: "127.0.0.1:0"}
ssh: {port: 65536}
`,
			want: `x.yml:6:18: ready.tcp: port 70000 is out of range; use 1..65535
x.yml:9:18: ready.tcp: "localhost" is not a port or host:port; use a port like 8080 or host:port like 127.0.0.1:8080
x.yml:12:18: ready.tcp: port 0 is out of range; use 1..65535
x.yml:13:13: ssh.port: 65536 is out of range; use a port number 1..65535`,
		},
		{
			name: "guest paths",
			src: `version: 1
kernel: {package: linux-image-cloud}
onboot:
  - name: prep
    command: prep
    dir: /var//lib
  - name: gen
    go: ./cmd/srv
    install: /
services:
  - name: web
    command: /usr/bin/web
    ready: {unix: run/web.sock}
  - name: api
    command: /usr/bin/api
    ready: {exec: [check, --ready]}
  - name: db
    command: /usr/bin/db
    ready: {exec: []}
`,
			want: `x.yml:5:14: command: "prep" is not an absolute path; use "/prep"
x.yml:6:10: dir: "/var//lib" is not a clean path; use "/var/lib"
x.yml:9:14: install: "/" is the root directory; use a path below it
x.yml:13:19: ready.unix: "run/web.sock" is not an absolute path; use "/run/web.sock"
x.yml:16:20: ready.exec: "check" is not an absolute path; use "/check"
x.yml:19:19: ready.exec: must not be empty; give the probe's command line, like [/usr/bin/check, --ready]`,
		},
		{
			name: "duplicate task and service names",
			src: `version: 1
kernel: {package: linux-image-cloud}
onboot:
  - name: prep
    command: /usr/bin/prep
  - name: prep
    command: /usr/bin/prep2
onshutdown:
  - name: prep
    command: /usr/bin/prep
services:
  - name: web
    command: /usr/bin/web
  - name: web
    command: /usr/bin/web2
`,
			want: `x.yml:6:5: duplicate onboot task name "prep" (first defined at x.yml:4:5)
x.yml:14:5: duplicate service name "web" (first defined at x.yml:12:5)`,
		},
		{
			name: "duplicate file paths",
			src: `version: 1
kernel: {package: linux-image-cloud}
files:
  - path: /etc/motd
    contents: hello
  - path: /etc/motd
    directory: true
`,
			want: `x.yml:6:11: duplicate file path "/etc/motd" (first defined at x.yml:4:11)`,
		},
		{
			name: "two things at one guest path",
			src: `version: 1
kernel: {package: linux-image-cloud}
onboot:
  - name: a
    go: ./cmd/srv
  - name: b
    go: ./cmd/srv
services:
  - name: web
    binary: ./bin/tool
    install: /usr/bin/srv
files:
  - path: /usr/bin/srv
    contents: x
`,
			want: `x.yml:11:14: install path "/usr/bin/srv" is also the install path of the program at x.yml:4:5; set install: to a different path
x.yml:13:11: path "/usr/bin/srv" is also the install path of the program at x.yml:4:5; use a different path`,
		},
		{
			name: "missing host files",
			src: `version: 1
kernel:
  deb: ./linux-image.deb
onboot:
  - name: prep
    go: ./cmd/nope
  - name: gen
    binary: ./bin/tool/gen
services:
  - name: web
    binary: /nope/bin
files:
  - path: /etc/motd
    source: motd.txt
`,
			want: `x.yml:3:8: kernel.deb "./linux-image.deb": no such file (resolved to $DIR/linux-image.deb)
x.yml:6:9: go "./cmd/nope": no such directory (resolved to $DIR/cmd/nope)
x.yml:8:13: binary "./bin/tool/gen": no such file (resolved to $DIR/bin/tool/gen)
x.yml:11:13: binary "/nope/bin": no such file
x.yml:14:13: source "motd.txt": no such file (resolved to $DIR/motd.txt)`,
		},
		{
			name: "host paths of the wrong kind",
			src: `version: 1
kernel:
  image: ./cmd
  modules_dir: ./bin/tool
onboot:
  - name: prep
    go: ./cmd/empty
  - name: gen
    go: ./bin/tool
  - name: check
    go: ./cmd/tests
services:
  - name: web
    binary: ./bin/data
  - name: api
    binary: ./cmd
files:
  - path: /etc/motd
    source: ./cmd
`,
			want: `x.yml:3:10: kernel.image "./cmd": is a directory; expected a kernel image file (vmlinuz)
x.yml:4:16: kernel.modules_dir "./bin/tool": is not a directory; expected a lib/modules/<version> directory
x.yml:7:9: go "./cmd/empty": has no .go files; expected a Go package directory
x.yml:9:9: go "./bin/tool": is not a directory; expected a Go package directory
x.yml:11:9: go "./cmd/tests": has no .go files; expected a Go package directory
x.yml:14:13: binary "./bin/data": is not executable (mode 0644); run chmod +x on it
x.yml:16:13: binary "./cmd": is a directory; expected an executable file
x.yml:19:13: source "./cmd": is a directory; expected a regular file`,
		},
		{
			name: "bad modes",
			src: `version: 1
kernel: {package: linux-image-cloud}
files:
  - path: /etc/a
    contents: a
    mode: rw-r--r--
  - path: /etc/b
    contents: b
    mode: 010000
  - path: /etc/c
    contents: c
    mode: 644
  - path: /etc/d
    contents: d
    mode: [0644]
  - path: /etc/e
    symlink: /etc/a
    mode: 0644
`,
			want: `x.yml:6:11: mode: "rw-r--r--" is not a file mode; use octal like 0644 (rw-r--r--) or 0755 (rwxr-xr-x)
x.yml:9:11: mode: 010000 is out of range; use at most 07777
x.yml:12:11: mode: 644 is decimal (01204 in octal); write 0644 for rw-r--r--
x.yml:15:11: mode must be an octal file mode like 0644, found a list
x.yml:18:5: mode is not valid for a symlink; symlinks are always 0777`,
		},
		{
			name: "file entries",
			src: `version: 1
kernel: {package: linux-image-cloud}
files:
  - path: etc/motd
    uid: 70000
  - path: /etc/empty
    contents:
  - contents: x
  - path: /srv
    directory: false
`,
			want: `x.yml:4:5: file has no content; set exactly one of contents, source, directory, symlink
x.yml:4:11: path: "etc/motd" is not an absolute path; use "/etc/motd"
x.yml:5:10: uid: 70000 is out of range; use a number 0..65534
x.yml:7:14: contents must be a string, found an empty value; use contents: "" for an empty file
x.yml:8:5: missing required key "path" in file
x.yml:10:16: directory: false describes nothing; use directory: true, or one of contents, source, symlink`,
		},
		{
			name: "bad CIDR and addresses",
			src: `version: 1
kernel: {package: linux-image-cloud}
network:
  mode: user
  address: 10.0.2.15
  dns: 10.0.2.300
`,
			want: `x.yml:5:12: network.address: "10.0.2.15" is not an address with prefix length (CIDR); use e.g. 192.0.2.15/24
x.yml:6:8: network.dns: "10.0.2.300" is not an IP address; use e.g. 192.0.2.53`,
		},
		{
			name: "gateway outside prefix",
			src: `version: 1
kernel: {package: linux-image-cloud}
network:
  mode: user
  address: 192.168.7.2/24
  gateway: 192.168.8.1
`,
			want: `x.yml:6:12: network.gateway: 192.168.8.1 is outside 192.168.7.0/24 (network.address); use an address inside that prefix`,
		},
		{
			name: "addresses without user networking",
			src: `version: 1
kernel: {package: linux-image-cloud}
network:
  address: 10.0.2.15/24
  dns: 1.1.1.1
`,
			want: `x.yml:4:3: network.address needs mode: auto; with mode none the guest has only loopback
x.yml:5:3: network.dns needs mode: auto; with mode none the guest has only loopback`,
		},
		{
			name: "network mode typo",
			src: `version: 1
kernel: {package: linux-image-cloud}
network: {mode: usr}
`,
			want: `x.yml:3:17: network.mode: "usr" is not valid; did you mean "user"? valid values: none, auto, user`,
		},
		{
			name: "mutually exclusive program kinds and no program",
			src: `version: 1
kernel: {package: linux-image-cloud}
onboot:
  - name: prep
    go: ./cmd/srv
    command: /usr/bin/prep
    binary: ./bin/tool
services:
  - name: web
    args: [--port, 8080]
`,
			want: `x.yml:6:5: go and command are mutually exclusive; set exactly one of go, binary, command, image
x.yml:7:5: go and binary are mutually exclusive; set exactly one of go, binary, command, image
x.yml:9:5: service has no program; set exactly one of go, binary, command, image`,
		},
		{
			name: "image services and sandboxes",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    image: registry.example.com/acme/web
    capabilities: [CAP_NET_BIND_SERVICE, CAP_NET_BIN]
    binds: ["/var/lib/web:/data:rx", "data:/data"]
    net: bridge
    resources: {memory: 64X, cpu: 0}
    ready: {exec: [/bin/true]}
  - name: plain
    binary: /bin/true
    readonly: true
  - name: boxed
    binary: /bin/true
    sandbox: true
    readonly: true
  - name: local
    image: "oci-layout:./img@"
    net: new
    ready: {tcp: 8080}
`,
			want: `x.yml:5:12: image: "registry.example.com/acme/web" has no tag or digest; pin it (…:1.0 or …@sha256:<digest>) so builds are reproducible
x.yml:6:42: capabilities: "CAP_NET_BIN" is not a capability; did you mean "CAP_NET_ADMIN"? valid names are CAP_CHOWN … CAP_CHECKPOINT_RESTORE (capabilities(7)); [] keeps none
x.yml:7:13: binds: "/var/lib/web:/data:rx": mode "rx" is not valid; use "SOURCE:TARGET" or "SOURCE:TARGET:rw" (read-only unless :rw), both absolute guest paths
x.yml:7:38: binds source: "data" is not an absolute path; use "/data"
x.yml:8:10: net: "bridge" is not valid; valid values: host, new
x.yml:9:25: resources.memory: bad memory size "64X"; use e.g. 128M or 1G
x.yml:9:35: resources.cpu: "0" is not valid; use a number of CPUs from 0.001 to 1024, like 0.5
x.yml:10:12: ready: an exec probe would run outside the sandbox of web; use a log, file, unix or tcp probe
x.yml:13:5: readonly configures the sandbox, which is off for this program; set sandbox: true or remove readonly
x.yml:17:15: readonly: a read-only root needs an image: this program shares the image's root; use image: or remove readonly
x.yml:19:12: image: "oci-layout:./img@" has an empty tag or digest after '@'; use a registry reference (registry.example.com/acme/web:1.0 or …@sha256:<64 hex>), oci-layout:DIR[@sha256:<digest>|@TAG] or docker-archive:FILE.tar
x.yml:21:12: ready: a tcp probe cannot reach local in its own network namespace (net: new); use a log, file or unix probe, or net: host`,
		},
		{
			name: "unknown disk format",
			src: `version: 1
kernel: {package: linux-image-cloud}
format: [raw-efi, qcow]
`,
			want: `x.yml:3:19: format: "qcow" is not a disk format; did you mean "qcow2"? valid: aws, gcp, iso-bios, iso-efi, qcow2, raw-bios, raw-efi, vhd, vhdx, vmdk`,
		},
		{
			name: "install without go or binary",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    install: /usr/local/bin/web
`,
			want: `x.yml:6:5: install is only valid with go or binary; a command is already in the image at its path`,
		},
		{
			name: "names",
			src: `version: 1
name: My VM
hostname: -bad-
kernel: {package: linux-image-cloud}
services:
  - name: Web
    command: /usr/bin/web
`,
			want: `x.yml:2:7: name: "My VM" is not a valid name; use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit
x.yml:3:11: hostname: "-bad-" is not a valid hostname; use letters, digits and '-' in dot-separated labels, at most 63 characters
x.yml:6:11: name: "Web" is not a valid name; use lowercase letters, digits, '_' and '-', starting with a letter or digit`,
		},
		{
			name: "hostname defaulted from a name that is not a hostname",
			src: `version: 1
name: my_vm
kernel: {package: linux-image-cloud}
`,
			want: `x.yml:2:7: hostname defaults to name "my_vm", which is not a valid hostname; set hostname: and use letters, digits and '-' in dot-separated labels, at most 63 characters`,
		},
		{
			name: "name defaulted from a bad file name",
			file: "Bad Name.yml",
			src: `version: 1
kernel: {package: linux-image-cloud}
`,
			want: `Bad Name.yml:1:1: name defaults to the file name "Bad Name", which is not a valid name; set name: and use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit`,
		},
		{
			name: "init",
			src: `version: 1
kernel: {package: linux-image-cloud}
init: systemd
`,
			want: `x.yml:3:7: init: "systemd" is not valid; valid values: kitinit`,
		},
		{
			name: "env and args",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    args: [--port, {n: 1}]
    env:
      1PORT: "80"
      MODE:
      HOME: /root
      HOME: /tmp
`,
			want: `x.yml:6:20: args must be a list of strings, found a mapping
x.yml:8:7: env: "1PORT" is not a valid variable name; use letters, digits and '_', not starting with a digit
x.yml:9:12: env.MODE must be a string, found an empty value
x.yml:11:7: duplicate key "HOME" in env (first defined at x.yml:10:7); remove one`,
		},
		{
			name: "users and groups",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    command: /usr/bin/web
    user: roto
    group: 65535
  - name: api
    command: /usr/bin/api
    user: www-data
`,
			want: `x.yml:6:11: user: "roto" is not valid; did you mean "root"? valid values: root, nobody or a number 0..65534
x.yml:7:12: group: 65535 is out of range; use root, nobody, nogroup or a number 0..65534
x.yml:10:11: user: "www-data" is not valid; valid values: root, nobody or a number 0..65534`,
		},
		{
			name: "restart",
			src: `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: a
    command: /usr/bin/a
    restart: on_failure
  - name: b
    command: /usr/bin/b
    restart:
      policy: always
      backoff: 1s
      max_backoff: 500ms
      max_restarts: -1
      jitter: 1s
  - name: c
    command: /usr/bin/c
    restart: [always]
`,
			want: `x.yml:6:14: restart: "on_failure" is not valid; did you mean "on-failure"? valid values: always, on-failure, never
x.yml:12:20: restart.max_backoff: 500ms is less than restart.backoff (1s); use at least 1s
x.yml:13:21: restart.max_restarts: -1 is out of range; use a number >= 0 (0 = unlimited)
x.yml:14:7: unknown key "jitter" in restart; valid keys: policy, backoff, max_backoff, max_restarts
x.yml:17:14: restart must be a policy (always, on-failure, never) or a mapping, found a list`,
		},
		{
			name: "kernel sources and modules",
			src: `version: 1
kernel:
  package: linux-image-cloud
  deb: ./linux.deb
  modules: [virtio_net, 9p, virtio-net, ext4.ko]
`,
			want: `x.yml:4:3: kernel.package and kernel.deb are mutually exclusive; set exactly one of package, deb, image
x.yml:5:29: kernel.modules: duplicate module "virtio-net" (first listed at x.yml:5:13); remove one
x.yml:5:41: kernel.modules: "ext4.ko" is not a module name; use letters, digits, '_' and '-', without path or .ko suffix`,
		},
		{
			name: "kernel without source",
			src: `version: 1
kernel:
  modules_dir: ./modules
  cmdline: quiet
`,
			want: `x.yml:3:3: kernel has no source; set exactly one of package, deb, image
x.yml:3:3: kernel.modules_dir is only valid with kernel.image; packages and debs bring their own modules`,
		},
		{
			name: "ssh",
			src: `version: 1
kernel: {package: linux-image-cloud}
ssh: "yes"
`,
			want: `x.yml:3:6: ssh must be true, false or a mapping with enabled and port, found a scalar "yes"`,
		},
		{
			name: "duplicate key",
			src: `version: 1
kernel: {package: linux-image-cloud}
version: 1
`,
			want: `x.yml:3:1: duplicate key "version" in spec (first defined at x.yml:1:1); remove one`,
		},
		{
			name: "YAML syntax error",
			src: `version: 1
kernel:
  package: linux-image-cloud
 deb: ./linux.deb
`,
			// yaml.v3 reports the line of the enclosing mapping and no column.
			want: `x.yml:3:1: invalid YAML: did not find expected key`,
		},
		{
			name: "second YAML document",
			src: `version: 1
kernel: {package: linux-image-cloud}
---
version: 1
`,
			want: `x.yml:3:1: a kitrun YAML file holds one document; remove this second one or move it to its own file`,
		},
		{
			name: "several errors, reported sorted by position",
			src: `ssh: maybe
files:
  - path: /etc/motd
    contents: hi
    mod: 0644
version: 3
services:
  - name: web
    command: web
kernel: {package: linux-image-cloud}
`,
			want: `x.yml:1:6: ssh must be true, false or a mapping with enabled and port, found a scalar "maybe"
x.yml:5:5: unknown key "mod" in file; did you mean "mode"? valid keys: path, contents, source, directory, symlink, mode, uid, gid
x.yml:6:10: version must be 1
x.yml:9:14: command: "web" is not an absolute path; use "/web"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if file == "" {
				file = "x.yml"
			}
			s, err, dir := parseIn(t, file, tt.src)
			if err == nil {
				t.Fatalf("no error; parsed %+v", s)
			}
			if s != nil {
				t.Errorf("got a spec along with the error")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors: %v", err, err)
			}
			got := strings.ReplaceAll(err.Error(), dir, "$DIR")
			if got != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tt.want)
			}
			if n := strings.Count(tt.want, "\n") + 1; len(errs.List) != n {
				t.Errorf("got %d errors, want %d", len(errs.List), n)
			}
		})
	}
}

func TestErrorsAs(t *testing.T) {
	_, err, _ := parseIn(t, "x.yml", "version: 1\nkernel: {package: linux-image-cloud}\nssh: 2\nversion: 7\n")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	if want := (Pos{File: "x.yml", Line: 3, Column: 6}); e.Pos != want {
		t.Errorf("first error at %v, want %v", e.Pos, want)
	}
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != 2 {
		t.Fatalf("want *Errors with 2 errors, got %v", err)
	}
	if want := (Pos{File: "x.yml", Line: 4, Column: 1}); errs.List[1].Pos != want {
		t.Errorf("second error at %v, want %v", errs.List[1].Pos, want)
	}
}

func TestParseMissingFile(t *testing.T) {
	_, err := Parse(filepath.Join(t.TempDir(), "nope.yml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

func TestParseMinimal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "minimal.yml")
	src := "version: 1\nkernel: {package: linux-image-cloud}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{
		Version:  1,
		Name:     "minimal",
		File:     path,
		Dir:      dir,
		Hostname: "minimal",
		Kernel:   Kernel{Package: "linux-image-cloud", Pos: Pos{path, 2, 9}},
		Init:     "kitinit",
		Network:  Network{Mode: "none"},
		SSH:      SSH{Port: 22},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

const richSpec = `version: 1
name: rich
hostname: rich.local
init: kitinit
kernel:
  image: ./vmlinuz
  modules_dir: ./modules
  cmdline: "quiet loglevel=3"
  modules: [virtio_net, 9p]
network:
  mode: user
onboot:
  - name: prepare
    go: ./cmd/srv
    args: [--flag, 8080]
    env: {MODE: fast, N: 3}
    timeout: 1m
onshutdown:
  - name: sync
    command: /bin/sync
    user: nobody
services:
  - name: web
    binary: ./bin/tool
    install: /usr/local/bin/web
    dir: /srv
    user: 1000
    group: nogroup
    restart: always
    ready:
      tcp: 127.0.0.1:8080
      timeout: 3s
  - name: worker
    command: /usr/bin/worker
    restart:
      policy: never
      backoff: 1s
      max_restarts: 3
    ready:
      exec: [/usr/bin/check, --ready]
      interval: 50ms
  - name: logger
    go: ./cmd/srv
    ready: {log: "listening on :\\d+"}
files:
  - path: /etc/motd
    contents: "hello\n"
  - path: /etc/app.conf
    source: ./motd
    mode: 0o600
    uid: 1000
    gid: 1000
  - path: /var/lib/app
    directory: true
  - path: /etc/alt
    symlink: /etc/motd
  - path: /etc/b
    contents: ""
    mode: "0640"
  - path: /etc/c
    contents: c
    mode: 420
ssh: {port: 2222}
`

func TestParseRich(t *testing.T) {
	got, err, dir := parseIn(t, "rich.yml", richSpec)
	if err != nil {
		t.Fatal(err)
	}
	pos := func(line, col int) Pos { return Pos{"rich.yml", line, col} }
	str := func(s string) *string { return &s }
	defaultRestart := Restart{Policy: "on-failure", Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
	want := &Spec{
		Version:  1,
		Name:     "rich",
		File:     filepath.Join(dir, "rich.yml"),
		Dir:      dir,
		Hostname: "rich.local",
		Kernel: Kernel{
			Image:      filepath.Join(dir, "vmlinuz"),
			ModulesDir: filepath.Join(dir, "modules"),
			Cmdline:    "quiet loglevel=3",
			Modules:    []string{"virtio_net", "9p"},
			ModulesPos: []Pos{pos(9, 13), pos(9, 25)},
			Pos:        pos(6, 3),
		},
		Init:    "kitinit",
		Network: Network{Mode: NetworkAuto, Pos: pos(11, 3)},
		Onboot: []Task{{
			Name: "prepare",
			Program: Program{
				Go:      filepath.Join(dir, "cmd/srv"),
				Install: "/usr/bin/srv",
				Args:    []string{"--flag", "8080"},
				Env:     map[string]string{"MODE": "fast", "N": "3"},
				Dir:     "/", User: "root", Group: "root",
				Pos: pos(13, 5),
			},
			Timeout: time.Minute,
			Pos:     pos(13, 5),
		}},
		Onshut: []Task{{
			Name:    "sync",
			Program: Program{Command: "/bin/sync", Dir: "/", User: "nobody", Group: "nobody", Pos: pos(19, 5)},
			Timeout: 30 * time.Second,
			Pos:     pos(19, 5),
		}},
		Services: []Service{
			{
				Name: "web",
				Program: Program{
					Binary:  filepath.Join(dir, "bin/tool"),
					Install: "/usr/local/bin/web",
					Dir:     "/srv", User: "1000", Group: "nogroup",
					Pos: pos(23, 5),
				},
				Restart: Restart{Policy: "always", Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second},
				Ready:   &Ready{TCP: "127.0.0.1:8080", Timeout: 3 * time.Second, Interval: 10 * time.Millisecond, Pos: pos(31, 7)},
				Pos:     pos(23, 5),
			},
			{
				Name:    "worker",
				Program: Program{Command: "/usr/bin/worker", Dir: "/", User: "root", Group: "root", Pos: pos(33, 5)},
				Restart: Restart{Policy: "never", Backoff: time.Second, MaxBackoff: 5 * time.Second, MaxRestarts: 3},
				Ready:   &Ready{Exec: []string{"/usr/bin/check", "--ready"}, Timeout: 10 * time.Second, Interval: 50 * time.Millisecond, Pos: pos(40, 7)},
				Pos:     pos(33, 5),
			},
			{
				Name:    "logger",
				Program: Program{Go: filepath.Join(dir, "cmd/srv"), Install: "/usr/bin/srv", Dir: "/", User: "root", Group: "root", Pos: pos(42, 5)},
				Restart: defaultRestart,
				Ready:   &Ready{Log: `listening on :\d+`, Timeout: 10 * time.Second, Interval: 10 * time.Millisecond, Pos: pos(44, 12)},
				Pos:     pos(42, 5),
			},
		},
		Files: []File{
			{Path: "/etc/motd", Contents: str("hello\n"), Mode: 0o644, Pos: pos(46, 5)},
			{Path: "/etc/app.conf", Source: filepath.Join(dir, "motd"), Mode: 0o600, UID: 1000, GID: 1000, Pos: pos(48, 5)},
			{Path: "/var/lib/app", Directory: true, Mode: 0o755, Pos: pos(53, 5)},
			{Path: "/etc/alt", Symlink: "/etc/motd", Mode: 0o777, Pos: pos(55, 5)},
			{Path: "/etc/b", Contents: str(""), Mode: 0o640, Pos: pos(57, 5)},
			{Path: "/etc/c", Contents: str("c"), Mode: 0o644, Pos: pos(60, 5)},
		},
		SSH: SSH{Enabled: true, Port: 2222, Pos: pos(63, 6)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	for i, r := range []string{"tcp", "exec", "log"} {
		if k := got.Services[i].Ready.Kind(); k != r {
			t.Errorf("service %d: ready kind %q, want %q", i, k, r)
		}
	}
}

// TestParseVariants checks defaults and shorthands the rich spec does not.
func TestParseVariants(t *testing.T) {
	got, err, _ := parseIn(t, "v.yml", `version: 1
kernel: {deb: ./linux.deb}
network:
  mode: user
  address: 192.168.7.2/24
  gateway: 192.168.7.1
  dns: 1.1.1.1
services:
  - name: web
    command: /usr/bin/web
    user: nobody
    restart: {backoff: 10s}
onboot:
onshutdown: []
files:
  - path: /etc/x
    contents: x
    directory: false
ssh: true
`)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kernel.Deb == "" || !filepath.IsAbs(got.Kernel.Deb) {
		t.Errorf("kernel deb %q, want an absolute path", got.Kernel.Deb)
	}
	wantNet := Network{Mode: NetworkAuto, Address: "192.168.7.2/24", Gateway: "192.168.7.1", DNS: "1.1.1.1", Pos: Pos{"v.yml", 4, 3}}
	if got.Network != wantNet {
		t.Errorf("network %+v, want %+v", got.Network, wantNet)
	}
	svc := got.Services[0]
	if svc.Program.Group != "nobody" {
		t.Errorf("group %q, want the user's (nobody)", svc.Program.Group)
	}
	// An explicit long backoff raises the default cap to match it.
	wantRestart := Restart{Policy: "on-failure", Backoff: 10 * time.Second, MaxBackoff: 10 * time.Second}
	if svc.Restart != wantRestart {
		t.Errorf("restart %+v, want %+v", svc.Restart, wantRestart)
	}
	if svc.Ready != nil {
		t.Errorf("ready %+v, want nil", svc.Ready)
	}
	if got.Onboot != nil || got.Onshut != nil {
		t.Errorf("empty sections: onboot %v, onshutdown %v", got.Onboot, got.Onshut)
	}
	// directory: false next to contents just says "not a directory".
	if f := got.Files[0]; f.Directory || f.Contents == nil || *f.Contents != "x" || f.Mode != 0o644 {
		t.Errorf("file %+v, want contents x, mode 0644", f)
	}
	if want := (SSH{Enabled: true, Port: 22, Pos: Pos{"v.yml", 19, 6}}); got.SSH != want {
		t.Errorf("ssh %+v, want %+v", got.SSH, want)
	}
	if got.Name != "v" || got.Hostname != "v" {
		t.Errorf("name %q hostname %q, want both from the file name", got.Name, got.Hostname)
	}

	got, err, _ = parseIn(t, "w.yml", "version: 1\nkernel: {package: linux-image-arm64}\nssh: {enabled: false}\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SSH{Port: 22, Pos: Pos{"w.yml", 3, 6}}); got.SSH != want {
		t.Errorf("ssh %+v, want %+v", got.SSH, want)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"name", "go", "binary", "command", "install", "args", "env", "dir", "user", "group", "restart", "ready"}
	tests := []struct {
		name  string
		valid []string
		want  string
	}{
		{"restrat", keys, "restart"}, // transposition costs one edit
		{"comand", keys, "command"},  // deletion
		{"groups", keys, "group"},    // insertion
		{"ready", keys, "ready"},     // exact
		{"readiness", keys, ""},      // too far
		{"xyz", keys, ""},            // nothing close
		{"ab", []string{"go"}, ""},   // every letter replaced is no match
		{"p9", []string{"9p"}, "9p"}, // short transposition
		{"virtio_nte", []string{"virtio_blk", "virtio_net"}, "virtio_net"},
		{"virtio_scsi_pci", []string{"virtio_scsi"}, "virtio_scsi"}, // longer names allow more edits
		{"e1000", []string{"e1000e", "e100"}, "e1000e"},             // ties go to the earlier entry
		{"anything", nil, ""},
		{"", keys, ""},
	}
	for _, tt := range tests {
		if got := Suggest(tt.name, tt.valid); got != tt.want {
			t.Errorf("Suggest(%q, %v) = %q, want %q", tt.name, tt.valid, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"restrat", "restart", 1},
		{"ab", "ba", 1},
		{"modüle", "module", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestParseImageSandbox(t *testing.T) {
	s, err, dir := parseIn(t, "x.yml", `version: 1
kernel: {package: linux-image-cloud}
services:
  - name: web
    image: docker-archive:web.tar
    capabilities: [net_bind_service]
    readonly: true
    binds: ["/var/lib/web:/data:rw", "/etc/web:/etc/web"]
    net: new
    resources: {memory: 64M, cpu: 0.5}
    seccomp: unconfined
  - name: plain
    binary: /bin/true
  - name: boxed
    binary: /bin/true
    sandbox: true
`)
	if err != nil {
		t.Fatal(err)
	}
	web := s.Services[0].Program
	if web.Image == nil || web.Image.Kind != "docker-archive" || web.Image.Path != filepath.Join(dir, "web.tar") {
		t.Errorf("image: %+v", web.Image)
	}
	if web.User != "" || web.Dir != "" {
		t.Errorf("user %q dir %q: an image's config decides them", web.User, web.Dir)
	}
	want := &Sandbox{Capabilities: []string{"CAP_NET_BIND_SERVICE"}, Readonly: true,
		Binds: []Bind{{"/var/lib/web", "/data", true}, {"/etc/web", "/etc/web", false}},
		Net:   NetNew, MemoryMiB: 64, CPUMilli: 500, Seccomp: SeccompUnconfined, Pos: web.Sandbox.Pos}
	if !reflect.DeepEqual(web.Sandbox, want) {
		t.Errorf("sandbox:\n got %+v\nwant %+v", web.Sandbox, want)
	}
	if s.Services[1].Program.Sandbox != nil {
		t.Errorf("a binary is sandboxed without asking")
	}
	if b := s.Services[2].Program.Sandbox; b == nil || len(b.Capabilities) != 14 || b.Net != NetHost || b.Seccomp != SeccompDefault {
		t.Errorf("sandbox: true: %+v", b)
	}
}
