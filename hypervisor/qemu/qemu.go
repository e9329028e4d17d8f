// Package qemu is kitrun's QEMU backend. It owns QEMU command lines (from a
// per-arch table of machine types that also says what the guest sees of
// each: the platform), the wiring of console, event channel and QMP monitor
// to sockets kitrun holds, firmware for disk images, the accelerator probe,
// host memory figures, and forced teardown. It knows nothing of kitinit's
// protocol (hypervisor/vm does).
//
// Console and event channel are socketpairs handed to QEMU as inherited file
// descriptors, so no byte the guest writes can be lost to a connect race and
// nothing is left on the filesystem; QMP is a unix socket in a private
// runtime directory because go-qemu's monitor dials by address. On Windows
// all three are TCP on 127.0.0.1 (streams.go). Nothing is left to QEMU's
// defaults (-nodefaults): every device is named here.
//
// QEMU never outlives kitrun, even after kill -9: on Linux it is started
// with a parent-death signal from an OS thread kept for that purpose until
// QEMU is reaped (Linux sends the signal when the thread that forked exits,
// not the process); elsewhere, or with KITRUN_QEMU_TEARDOWN=watchdog, a
// watchdog that kills QEMU when a pipe only kitrun holds reads EOF
// (teardown.go). Either way QEMU runs in a process group of its own so that
// a terminal's Ctrl-C reaches kitrun only.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/platform"
	"github.com/kitrun/kitrun/boot/procid"
	"github.com/kitrun/kitrun/boot/runtimedir"
	"github.com/kitrun/kitrun/hypervisor"
)

// Backend starts QEMU machines. The zero value is ready to use.
type Backend struct {
	// BinaryDir, when set, is searched for qemu-system-* before PATH.
	BinaryDir string
	// ProbeCache is the accelerator probe's cache file; default under the
	// user's cache directory.
	ProbeCache string
	// CacheDir holds what the backend derives from images (PVH kernels,
	// see pvh.go); default $KITRUN_CACHE, else the user's cache
	// directory's kitrun.
	CacheDir string
	// NoPVH boots x86 kernels as bzImages even where PVH works.
	NoPVH bool
	// TBSizeMiB caps TCG's translation buffer: 0 is DefaultTBSizeMiB, a
	// negative value QEMU's own default (1 GiB on 64-bit hosts).
	TBSizeMiB int
	// ICountShift, when above 0, runs TCG guests with QEMU's instruction
	// counter as their clock (-icount shift=N,align=off,sleep=off): each
	// instruction advances guest time by 2^N ns, and the guest neither
	// waits for the host's clock nor sleeps. Guest time to each stage is
	// then a function of the instructions the guest executes, the same
	// from run to run whatever the host is doing: a measure of guest work
	// that needs no statistics (README, "Deterministic guest time").
	ICountShift int
}

// DefaultTBSizeMiB is the TCG translation buffer kitrun gives a machine.
// QEMU's default reserves 1 GiB and a boot of examples/minimal.yml fills
// 56 MiB of it with code that mostly never runs again (the kernel's init
// code, programs that exited, code on pages since rewritten); at 32 MiB
// QEMU flushes the buffer when full and retranslates what still runs,
// which cost nothing measurable on the boot (see README, Host memory),
// and each VM holds 24-30 MiB less.
const DefaultTBSizeMiB = 32

// accelArg is -accel's value.
func (b *Backend) accelArg(accel string) string {
	if accel != "tcg" {
		return accel
	}
	switch {
	case b.TBSizeMiB < 0:
		return accel
	case b.TBSizeMiB == 0:
		return fmt.Sprintf("tcg,tb-size=%d", DefaultTBSizeMiB)
	}
	return fmt.Sprintf("tcg,tb-size=%d", b.TBSizeMiB)
}

var _ hypervisor.Backend = (*Backend)(nil)

func init() {
	hypervisor.Register("qemu", func(o hypervisor.Options) (hypervisor.Backend, error) {
		if err := o.Check("qemu", "binary-dir", "probe-cache", "cache-dir", "pvh", "tb-size", "icount"); err != nil {
			return nil, err
		}
		b := &Backend{BinaryDir: o["binary-dir"], ProbeCache: o["probe-cache"], CacheDir: o["cache-dir"]}
		switch o["pvh"] {
		case "", "on":
		case "off":
			b.NoPVH = true
		default:
			return nil, fmt.Errorf("qemu: pvh=%s: want on or off", o["pvh"])
		}
		switch v := o["tb-size"]; v {
		case "":
		case "qemu":
			b.TBSizeMiB = -1
		default:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("qemu: tb-size=%s: want MiB (a positive number) or qemu (QEMU's default)", v)
			}
			b.TBSizeMiB = n
		}
		if v := o["icount"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10 {
				return nil, fmt.Errorf("qemu: icount=%s: want a shift from 1 to 10 (guest ns per instruction: 2^shift)", v)
			}
			b.ICountShift = n
		}
		return b, nil
	})
}

// Name implements hypervisor.Backend.
func (b *Backend) Name() string { return "qemu" }

// Platform implements hypervisor.Backend.
func (b *Backend) Platform(a arch.Arch) (platform.Platform, error) { return platformOf(a) }

// Verify implements hypervisor.Backend: QEMU for a must be installed.
func (b *Backend) Verify(ctx context.Context, a arch.Arch) error {
	_, mt, err := lookupMachine(a, "")
	if err != nil {
		return err
	}
	_, err = b.findBinary(mt.binary)
	return err
}

// Version implements hypervisor.Backend, e.g. "7.2.22 (Debian
// 1:7.2+dfsg-7+deb12u18+b3)".
func (b *Backend) Version(ctx context.Context, a arch.Arch) (string, error) {
	_, mt, err := lookupMachine(a, "")
	if err != nil {
		return "", err
	}
	bin, err := b.findBinary(mt.binary)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	line := firstLine(strings.TrimSpace(string(out)))
	return strings.TrimPrefix(line, "QEMU emulator version "), nil
}

// qemuRelease is a QEMU release's major and minor number.
type qemuRelease struct{ major, minor int }

func (r qemuRelease) String() string { return fmt.Sprintf("%d.%d", r.major, r.minor) }

func (r qemuRelease) before(o qemuRelease) bool {
	return r.major < o.major || r.major == o.major && r.minor < o.minor
}

// parseRelease reads the release from what Version returns ("7.2.22
// (Debian …)", "10.2.0").
func parseRelease(version string) (qemuRelease, error) {
	var r qemuRelease
	if _, err := fmt.Sscanf(version, "%d.%d", &r.major, &r.minor); err != nil {
		return qemuRelease{}, fmt.Errorf("qemu: version %q: %w", version, err)
	}
	return r, nil
}

// Destroy implements hypervisor.Backend: the ID is QEMU's PID and start
// time, so a PID reused by another process is never killed.
func (b *Backend) Destroy(ctx context.Context, id string) error {
	pid, ok := procid.Parse(id)
	if !ok {
		return fmt.Errorf("qemu: %q is not a machine ID (PID-START)", id)
	}
	if pid.Kill(5*time.Second) && !pid.WaitGone(0) {
		return fmt.Errorf("qemu (pid %d) still running 5s after SIGKILL", pid.PID)
	}
	return nil
}

// Alive implements hypervisor.Backend.
func (b *Backend) Alive(ctx context.Context, id string) (bool, error) {
	pid, ok := procid.Parse(id)
	if !ok {
		return false, fmt.Errorf("qemu: %q is not a machine ID (PID-START)", id)
	}
	return pid.Running(), nil
}

// plan is what a machine's command line is made of, before any per-run
// file exists.
type plan struct {
	machineName   string
	mt            machineType
	binary        string
	boot          *bootMedia
	accel, reason string
	res           hypervisor.Resources
}

// plan checks spec against this host and resolves its machine.
func (b *Backend) plan(ctx context.Context, spec hypervisor.Spec) (*plan, error) {
	img := spec.Image
	if img == nil {
		return nil, errors.New("qemu: no image to boot")
	}
	if img.Manifest.Platform != "qemu" {
		return nil, fmt.Errorf("image %s was built for the %s platform, not qemu; rebuild it with --backend qemu", img.Manifest.Name, img.Manifest.Platform)
	}
	res := spec.Resources.WithDefaults()
	machineName, mt, err := lookupMachine(img.Arch, res.Machine)
	if err != nil {
		return nil, err
	}
	binary, err := b.findBinary(mt.binary)
	if err != nil {
		return nil, err
	}
	boot, err := b.bootMedia(spec, machineName, mt)
	if err != nil {
		return nil, err
	}
	accel, reason, err := b.resolveAccel(ctx, img.Arch, res.Accel, machineName, mt, binary, img.Kernel)
	if err != nil {
		return nil, err
	}
	if b.ICountShift > 0 && accel != "tcg" {
		return nil, fmt.Errorf("qemu: icount counts TCG's instructions; --accel %s (%s) has none: use --accel tcg", accel, reason)
	}
	return &plan{machineName: machineName, mt: mt, binary: binary, boot: boot, accel: accel, reason: reason, res: res}, nil
}

// args are QEMU's arguments for the plan.
func (b *Backend) args(p *plan, network bool, published []hypervisor.PortForward, qmp, console, channel string) []string {
	args := commandLine(commandLineInput{
		mt: p.mt, accel: p.accel, accelArg: b.accelArg(p.accel), res: p.res, boot: p.boot, network: network,
		publish: published, qmp: qmp, console: console, channel: channel,
	})
	if b.ICountShift > 0 {
		args = append(args, "-icount", fmt.Sprintf("shift=%d,align=off,sleep=off", b.ICountShift))
	}
	return args
}

// Start implements hypervisor.Backend.
func (b *Backend) Start(ctx context.Context, spec hypervisor.Spec) (hypervisor.Machine, error) {
	img := spec.Image
	p, err := b.plan(ctx, spec)
	if err != nil {
		return nil, err
	}
	machineName, mt, binary, boot, accel, reason, res := p.machineName, p.mt, p.binary, p.boot, p.accel, p.reason, p.res
	if spec.RestoreFrom != "" {
		if err := checkRestorable(spec, boot); err != nil {
			return nil, err
		}
	}
	published, err := hypervisor.ResolvePorts(spec.Publish)
	if err != nil {
		return nil, err
	}
	if len(published) > 0 && !img.Networked() {
		return nil, fmt.Errorf("publishing ports needs networking, and image %s has none", img.Manifest.Name)
	}

	m := &machine{
		info: hypervisor.Info{
			Backend: "qemu", Arch: img.Arch.Name, Machine: machineName, Format: spec.Format,
			Accel: accel, AccelReason: reason, Published: published,
		},
		memMiB:   res.MemoryMiB,
		powerKey: mt.powerKey,
		monDone:  make(chan struct{}),
		events:   make(chan hypervisor.BackendEvent, 64),
		done:     make(chan struct{}),
		monReady: make(chan struct{}),
	}
	if err := m.setupRuntimeDir(spec.RuntimeDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.closeFiles()
			m.removeRuntimeDir()
		}
	}()
	if spec.RestoreFrom != "" {
		// The boot files of the run the state was saved from: the guest
		// booted from them, and QEMU's view of them must not change.
		boot.initrd = filepath.Join(spec.RestoreFrom, savedInitrd)
	} else if err := boot.prepare(spec, mt, m.runtimeDir); err != nil {
		return nil, err
	}
	m.boot = boot

	con, err := newLink("console", 3)
	if err != nil {
		return nil, err
	}
	m.links = append(m.links, con)
	var ch *link
	if !spec.NoChannel && mt.hw.Channel != "" {
		if ch, err = newLink("channel", 4); err != nil {
			return nil, err
		}
		m.links = append(m.links, ch)
	}

	qmpArg, qmpNet, qmpAddr, err := qmpAddress(m.runtimeDir)
	if err != nil {
		return nil, err
	}
	args := b.args(p, img.Networked(), published, qmpArg, con.chardev, ch.chardevOrEmpty())
	if spec.RestoreFrom != "" {
		// Started paused, waiting for migrate-incoming (restoreState).
		args = append(args, "-incoming", "defer")
	}
	cmd := exec.Command(binary, args...)
	// fds 3 (console) and 4 (channel) in QEMU, as newLink named them.
	for _, k := range m.links {
		if k.guest != nil {
			cmd.ExtraFiles = append(cmd.ExtraFiles, k.guest)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	m.start = time.Now()
	// QEMU must not outlive kitrun, even after kill -9 (teardown.go).
	qp, err := startQEMU(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	ok = true
	pid := procid.Of(qp.pid)
	m.pid = pid
	m.kill = qp.kill
	m.info.ID = pid.String()
	m.info.Started = m.start
	m.info.Process = &hypervisor.Process{PID: pid.PID, Start: pid.Start, Command: append([]string{binary}, args...)}
	// QEMU holds its ends now; ours would keep the sockets open after
	// QEMU exits and hide EOF.
	for _, k := range m.links {
		if k.guest != nil {
			k.guest.Close()
			k.guest = nil
		}
	}
	exited := make(chan struct{})
	waited := make(chan error, 1)
	go func() {
		err := <-qp.waited
		close(exited)
		waited <- err
	}()
	for _, k := range m.links {
		if err := k.accept(time.Now().Add(monitorDeadline), exited); err != nil {
			qp.kill()
			<-waited
			m.removeRuntimeDir()
			m.closeFiles()
			if stderr.Len() > 0 {
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
			}
			return nil, err
		}
	}
	m.console = con.host
	if ch != nil {
		m.channel = ch.host
	}
	m.info.Version, _ = b.Version(ctx, img.Arch)

	go m.connectMonitor(qmpNet, qmpAddr)
	if spec.RestoreFrom != "" {
		go m.restoreState(spec.RestoreFrom)
	}
	go func() {
		err := <-waited
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		m.mu.Lock()
		m.exitErr = err
		m.mu.Unlock()
		detail := "exit status 0"
		if err != nil {
			detail = err.Error()
		}
		// QEMU's last events (SHUTDOWN) precede its exit: let the
		// monitor's reader, which ends at the socket's EOF, pass them on
		// before EvExited (bounded: a monitor that never came up may still
		// be dialling).
		m.mu.Lock()
		connected := m.mon != nil
		m.mu.Unlock()
		if connected {
			select {
			case <-m.monDone:
			case <-time.After(2 * time.Second):
			}
		}
		m.closeMonitor()
		m.emit(hypervisor.BackendEvent{Kind: hypervisor.EvExited, Detail: detail})
		m.removeRuntimeDir()
		// Done means gone: process reaped, files removed. Our socket ends
		// stay open until their readers have drained what QEMU wrote.
		close(m.done)
		m.closeEvents()
		time.AfterFunc(streamLinger, m.closeFiles)
	}()
	return m, nil
}

// commandLineInput is everything QEMU's arguments depend on.
type commandLineInput struct {
	mt    machineType
	accel string
	// accelArg is -accel's value (accel with its options).
	accelArg string
	res      hypervisor.Resources
	boot     *bootMedia
	network  bool
	publish  []hypervisor.PortForward
	// qmp is -qmp's value; console and channel are the -chardev socket
	// options of those streams (channel "" when there is none).
	qmp     string
	console string
	channel string
}

// commandLine builds QEMU's arguments. Nothing is left to QEMU's defaults:
// with -nodefaults every device is named here (some machine types print
// nothing on a default console, and microvm has no serial port at all).
func commandLine(in commandLineInput) []string {
	mt := in.mt
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", mt.machine,
		"-accel", in.accelArg,
		"-cpu", mt.cpuFor(in.accel),
		"-m", strconv.Itoa(in.res.MemoryMiB),
		"-smp", strconv.Itoa(in.res.CPUs),
		"-chardev", "socket,id=con," + in.console,
	}
	console := mt.console
	if console == nil {
		console = serialConsole
	}
	args = append(args, console("con")...)
	args = append(args, "-qmp", in.qmp)
	if mt.firmware != "" {
		args = append(args, "-bios", mt.firmware)
	}
	args = append(args, in.boot.args(mt, in.accel, in.network, in.channel == "")...)
	if in.channel != "" {
		args = append(args, "-chardev", "socket,id=chan,"+in.channel)
		args = append(args, mt.channel("chan")...)
	}
	args = append(args, mt.extra...)
	if in.network {
		netdev := "user,id=net0"
		for _, p := range in.publish {
			netdev += fmt.Sprintf(",hostfwd=tcp:%s:%d-:%d", p.HostAddr, p.HostPort, p.GuestPort)
		}
		args = append(args, "-netdev", netdev)
		args = append(args, mt.nic("net0")...)
	}
	return args
}

// tscHint gives the guest kernel the TSC frequency where the machine has
// no timer to calibrate it against under TCG (see machineType).
func tscHint(mt machineType, accel string) []string {
	if accel != "tcg" || !mt.tscHint {
		return nil
	}
	if khz := hostTSCkHz(); khz > 0 {
		return []string{fmt.Sprintf("tsc_early_khz=%d", khz)}
	}
	return nil
}

func (b *Backend) findBinary(name string) (string, error) {
	if b.BinaryDir != "" {
		p := filepath.Join(b.BinaryDir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install QEMU (Debian: apt-get install qemu-system-x86 qemu-system-arm qemu-system-misc qemu-system-ppc), or run `make deps`", name)
	}
	return p, nil
}

// streamLinger is how long after QEMU's exit kitrun's ends of the console
// and channel stay open for a reader that has not reached EOF yet.
const streamLinger = 30 * time.Second

// machine is a running QEMU process.
type machine struct {
	info       hypervisor.Info
	pid        procid.ID
	memMiB     int
	boot       *bootMedia
	start      time.Time
	runtimeDir string
	ownDir     bool
	console    stream
	channel    stream // nil when the channel shares the console or is off
	links      []*link
	kill       func() error // QEMU and its helpers, now (proc.kill)
	powerKey   bool         // the power button is a keyboard's power key (machineType.powerKey)

	mu         sync.Mutex
	exitErr    error
	mon        *qmp.SocketMonitor
	monReady   chan struct{}
	monErr     error
	monDone    chan struct{} // closed when connectMonitor returns
	eventsDone bool
	events     chan hypervisor.BackendEvent
	done       chan struct{}
}

func (m *machine) Info() hypervisor.Info                  { return m.info }
func (m *machine) Events() <-chan hypervisor.BackendEvent { return m.events }
func (m *machine) Done() <-chan struct{}                  { return m.done }
func (m *machine) Console() io.ReadWriter                 { return eofCloser{m.console} }
func (m *machine) Endpoint(guestPort int) (string, error) {
	return hypervisor.EndpointOf(m.info.Published, guestPort)
}
func (m *machine) since() time.Duration { return time.Since(m.start) }
func (m *machine) HostMemory(context.Context) (hypervisor.HostMemory, error) {
	return hostMemory(m.pid.PID, m.memMiB)
}

// Channel implements hypervisor.Machine. A nil *os.File must become a nil
// interface.
func (m *machine) Channel() io.ReadWriter {
	if m.channel == nil {
		return nil
	}
	return eofCloser{m.channel}
}

// eofCloser closes kitrun's end of a stream once its reader has read
// everything QEMU wrote (EOF): closing it earlier would lose those bytes.
// A stream nobody reads is closed a while after the machine is gone
// (Start's exit goroutine).
type eofCloser struct{ f stream }

func (e eofCloser) Read(p []byte) (int, error) {
	n, err := e.f.Read(p)
	if err == io.EOF {
		e.f.Close()
	}
	return n, err
}

func (e eofCloser) Write(p []byte) (int, error)        { return e.f.Write(p) }
func (e eofCloser) SetWriteDeadline(t time.Time) error { return e.f.SetWriteDeadline(t) }

func (m *machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
}

// emit stamps and delivers a backend event. vm.VM drains the channel for the
// machine's whole life, so a blocking send is bounded by its consumer.
func (m *machine) emit(e hypervisor.BackendEvent) {
	if e.Host == 0 {
		e.Host = m.since()
	}
	m.mu.Lock()
	if m.eventsDone {
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	select {
	case m.events <- e:
	case <-time.After(10 * time.Second):
		// A consumer that stopped draining must not wedge QEMU's teardown.
	}
}

func (m *machine) closeEvents() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.eventsDone {
		m.eventsDone = true
		close(m.events)
	}
}

func (m *machine) setupRuntimeDir(dir string) error {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		m.runtimeDir = dir
		return nil
	}
	d, err := runtimedir.MkdirTemp("vm-")
	if err != nil {
		return err
	}
	m.runtimeDir, m.ownDir = d, true
	return nil
}

func (m *machine) removeRuntimeDir() {
	if m.ownDir {
		os.RemoveAll(m.runtimeDir)
		return
	}
	for _, f := range runtimeFiles {
		os.Remove(filepath.Join(m.runtimeDir, f))
	}
}

func (m *machine) closeFiles() {
	for _, k := range m.links {
		k.close()
	}
}

func (m *machine) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// PowerButton implements hypervisor.Machine: QMP system_powerdown, or on a
// machine whose power button is a keyboard's power key, a press and release
// of that key.
func (m *machine) PowerButton(ctx context.Context) error {
	if m.exited() {
		return hypervisor.ErrExited
	}
	if m.powerKey {
		_, err := m.runQMP(ctx, "input-send-event", map[string]any{"events": []any{powerKeyEvent(true), powerKeyEvent(false)}})
		return err
	}
	_, err := m.runQMP(ctx, "system_powerdown", nil)
	return err
}

func powerKeyEvent(down bool) map[string]any {
	return map[string]any{"type": "key", "data": map[string]any{
		"down": down, "key": map[string]any{"type": "qcode", "data": "power"}}}
}

// ForceOff implements hypervisor.Machine: QMP quit, then SIGKILL to QEMU's
// process group. Every step's error is kept; success is the process being
// gone.
func (m *machine) ForceOff(ctx context.Context) error {
	if m.exited() {
		return nil
	}
	var errs []error
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := m.runQMP(qctx, "quit", nil)
	cancel()
	if err != nil && !m.exited() {
		errs = append(errs, fmt.Errorf("qmp quit: %w", err))
	}
	if m.waitDone(ctx, 2*time.Second) {
		return nil // quit worked; a failed request to a dying QEMU is no matter
	}
	if err := m.kill(); err != nil {
		errs = append(errs, fmt.Errorf("kill qemu (pid %d): %w", m.pid.PID, err))
	}
	if !m.waitDone(ctx, 5*time.Second) {
		errs = append(errs, fmt.Errorf("qemu (pid %d) still running 5s after SIGKILL", m.pid.PID))
	}
	return errors.Join(errs...)
}

func (m *machine) waitDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return m.exited()
	}
}

// limitedWriter keeps the first n bytes (QEMU's errors come first).
type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
