// Package qemu is kitrun's QEMU backend. It owns QEMU command lines (from a
// per-arch table of machine types), the wiring of console, event channel and
// QMP monitor to sockets kitrun holds, the accelerator probe, and teardown.
//
// Console and event channel are socketpairs handed to QEMU as inherited file
// descriptors, so no byte the guest writes can be lost to a connect race and
// nothing is left on the filesystem; QMP is a unix socket in a private
// runtime directory because go-qemu's monitor dials by address.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/boot/arch"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
)

// Backend starts QEMU machines. The zero value is ready to use.
type Backend struct {
	// BinaryDir, when set, is searched for qemu-system-* before PATH.
	BinaryDir string
	// ProbeCache is the accelerator probe's cache file; default under the
	// user's cache directory.
	ProbeCache string
}

var _ hypervisor.Backend = (*Backend)(nil)

// Name implements hypervisor.Backend.
func (b *Backend) Name() string { return "qemu" }

// consoleTail is how many console lines a machine keeps for error reports.
const consoleTail = 200

// Start implements hypervisor.Backend.
func (b *Backend) Start(ctx context.Context, cfg hypervisor.Config) (hypervisor.Machine, error) {
	machineName, hw, err := cfg.Arch.Machine(cfg.Machine)
	if err != nil {
		return nil, err
	}
	mt, err := lookupMachine(cfg.Arch.Name, machineName)
	if err != nil {
		return nil, err
	}
	binary, err := b.findBinary(mt.binary)
	if err != nil {
		return nil, err
	}
	accel, reason, err := b.resolveAccel(ctx, cfg, machineName, mt, binary)
	if err != nil {
		return nil, err
	}

	m := &machine{
		info: hypervisor.Info{
			Backend: "qemu", Arch: cfg.Arch.Name, Machine: machineName,
			Accel: accel, AccelReason: reason, Publish: cfg.Publish,
		},
		events:  make(chan hypervisor.Event, 256),
		done:    make(chan struct{}),
		console: newLineRing(consoleTail),
	}
	if err := m.setupRuntimeDir(cfg.RuntimeDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.closeFiles()
			m.removeRuntimeDir()
		}
	}()

	conHost, conGuest, err := socketpair("console")
	if err != nil {
		return nil, err
	}
	m.files = append(m.files, conHost, conGuest)
	m.consoleIn = conHost
	chHost, chGuest, err := socketpair("channel")
	if err != nil {
		return nil, err
	}
	m.files = append(m.files, chHost, chGuest)
	m.channel = chHost

	qmpPath := filepath.Join(m.runtimeDir, "qmp.sock")
	args := commandLine(cfg, mt, hw, accel, qmpPath)
	cmd := exec.Command(binary, args...)
	// fds 3 and 4 in QEMU, as commandLine names them.
	cmd.ExtraFiles = []*os.File{conGuest, chGuest}
	cmd.Stdin = nil
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// QEMU must not outlive kitrun, even after kill -9: the kernel
		// kills it when the thread that started it dies.
		Pdeathsig: syscall.SIGKILL,
		// Its own group, so a terminal's Ctrl-C reaches kitrun only and
		// teardown is kitrun's to order.
		Setpgid: true,
	}
	m.info.Command = append([]string{binary}, args...)
	m.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	ok = true
	m.cmd = cmd
	m.info.PID = cmd.Process.Pid
	m.info.Started = m.start
	// QEMU holds its ends now; ours would keep the sockets open after
	// QEMU exits and hide EOF.
	conGuest.Close()
	chGuest.Close()

	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); m.readConsole(conHost, cfg.Console) }()
	go func() { defer readers.Done(); m.readChannel(chHost) }()
	go m.connectMonitor(qmpPath)
	go func() {
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		m.mu.Lock()
		m.exitErr = err
		m.mu.Unlock()
		// The sockets reach EOF once QEMU is gone; wait for the readers so
		// that every console line and event is delivered before "exited".
		waitTimeout(&readers, 2*time.Second)
		detail := "exit status 0"
		if err != nil {
			detail = err.Error()
		}
		m.closeMonitor()
		m.closeFiles()
		m.removeRuntimeDir()
		m.emit(hypervisor.Event{Kind: hypervisor.EvExited, Detail: detail})
		// Done means gone: process reaped, sockets closed, files removed.
		close(m.done)
		m.closeEvents()
	}()
	return m, nil
}

// commandLine builds QEMU's arguments. Nothing is left to QEMU's defaults:
// with -nodefaults every device is named here (see NOTES on console traps).
func commandLine(cfg hypervisor.Config, mt machineType, hw archHardware, accel, qmpPath string) []string {
	mem := cfg.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	cpus := cfg.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", mt.machine,
		"-accel", accel,
		"-cpu", mt.cpu[accel],
		"-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(cpus),
		"-kernel", cfg.Kernel,
		"-append", kernelCmdline(cfg.Cmdline+tscHint(mt, accel), hw, cfg.Network, !cfg.NoEventChannel),
		"-chardev", "socket,id=con,fd=3",
		"-serial", "chardev:con",
		"-chardev", "socket,id=chan,fd=4",
		"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
	}
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	args = append(args, mt.channel("chan")...)
	args = append(args, mt.extra...)
	if cfg.Network {
		netdev := "user,id=net0"
		for _, p := range cfg.Publish {
			netdev += fmt.Sprintf(",hostfwd=tcp:%s:%d-:%d", p.HostAddr, p.HostPort, p.GuestPort)
		}
		args = append(args, "-netdev", netdev)
		args = append(args, mt.nic("net0")...)
	}
	return args
}

// tscHint gives the guest kernel what TCG's timing needs: the TSC
// frequency where it cannot calibrate it reliably, and no IO-APIC timer
// check (see machineType).
func tscHint(mt machineType, accel string) string {
	if accel != "tcg" {
		return ""
	}
	hint := ""
	if mt.timerCheck {
		hint += " no_timer_check"
	}
	if khz := hostTSCkHz(); mt.tscHint && khz > 0 {
		hint += fmt.Sprintf(" tsc_early_khz=%d", khz)
	}
	return hint
}

// kernelCmdline appends the wiring kitinit and the kernel need to the
// image's own command line.
func kernelCmdline(image string, hw archHardware, network, channel bool) string {
	parts := []string{}
	if s := strings.TrimSpace(image); s != "" {
		parts = append(parts, s)
	}
	parts = append(parts,
		"console="+hw.Console,
		// A panicking guest reboots at once, which -no-reboot turns into
		// QEMU's exit: a panic never hangs a run.
		"panic=-1")
	var mods []string
	if channel {
		parts = append(parts, initproto.ParamChannel+"="+hw.Channel)
		mods = append(mods, hw.ChannelModules...)
	}
	if network {
		for _, m := range hw.NICModules {
			if !slices.Contains(mods, m) {
				mods = append(mods, m)
			}
		}
	}
	if len(mods) > 0 {
		parts = append(parts, initproto.ParamChannelModules+"="+strings.Join(mods, ","))
	}
	return strings.Join(parts, " ")
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
		return "", fmt.Errorf("%s not found: install QEMU (Debian: apt-get install qemu-system-x86 qemu-system-arm), or run `make deps`", name)
	}
	return p, nil
}

func socketpair(what string) (host, guest *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s socketpair: %w", what, err)
	}
	return os.NewFile(uintptr(fds[0]), what+"-host"), os.NewFile(uintptr(fds[1]), what+"-guest"), nil
}

// machine is a running QEMU process.
type machine struct {
	info       hypervisor.Info
	cmd        *exec.Cmd
	start      time.Time
	runtimeDir string
	ownDir     bool
	channel    *os.File
	consoleIn  *os.File // kitrun's end of the console, for input
	files      []*os.File
	console    *lineRing

	mu         sync.Mutex
	exitErr    error
	mon        *qmp.SocketMonitor
	monReady   chan struct{}
	monErr     error
	eventsDone bool
	events     chan hypervisor.Event
	done       chan struct{}
	sendMu     sync.Mutex
	stopOnce   sync.Once
	stopErr    error
}

func (m *machine) Events() <-chan hypervisor.Event { return m.events }
func (m *machine) Done() <-chan struct{}           { return m.done }
func (m *machine) Info() hypervisor.Info           { return m.info }

func (m *machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
}

// ConsoleTail returns the last n console lines.
func (m *machine) ConsoleTail(n int) []string { return m.console.Last(n) }

func (m *machine) since() time.Duration { return time.Since(m.start) }

// emit stamps and delivers an event. The channel is buffered; a consumer
// that stops draining loses events rather than wedging the readers.
func (m *machine) emit(e hypervisor.Event) {
	if e.Host == 0 {
		e.Host = m.since()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eventsDone {
		return
	}
	select {
	case m.events <- e:
	default:
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

func (m *machine) readConsole(r io.Reader, out io.Writer) {
	br := bufio.NewReaderSize(r, 64<<10)
	kernel := false
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			now := m.since()
			if out != nil {
				out.Write([]byte(line))
			}
			text := strings.TrimRight(line, "\r\n")
			m.console.Add(text)
			if !kernel && isKernelLine(text) {
				kernel = true
				m.emit(hypervisor.Event{Host: now, Kind: hypervisor.EvKernelStart})
			}
			if strings.Contains(text, "Kernel panic - not syncing") {
				m.emit(hypervisor.Event{Host: now, Kind: hypervisor.EvGuestPanic, Detail: text})
			}
		}
		if err != nil {
			return
		}
	}
}

// printkStamp matches the timestamp printk puts on a kernel line
// ("[    0.000000] "), the earliest console sign that the kernel, not the
// firmware, is talking. Firmware escape sequences may precede it.
var printkStamp = regexp.MustCompile(`\[\s*\d+\.\d{6}\] `)

func isKernelLine(s string) bool {
	loc := printkStamp.FindStringIndex(s)
	return loc != nil && loc[0] < 32
}

func (m *machine) readChannel(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			now := m.since()
			ev, perr := initproto.DecodeEvent(line)
			if perr != nil {
				m.emit(hypervisor.Event{Host: now, Kind: hypervisor.EvChannelError, Detail: perr.Error()})
			} else {
				m.emit(hypervisor.Event{Host: now, Guest: &ev})
			}
		}
		if err != nil {
			return
		}
	}
}

// Send implements hypervisor.Machine.
func (m *machine) Send(ctx context.Context, cmd string) error {
	select {
	case <-m.done:
		return errors.New("machine has exited")
	default:
	}
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		m.channel.SetWriteDeadline(dl)
		defer m.channel.SetWriteDeadline(time.Time{})
	}
	_, err := m.channel.Write([]byte(cmd + "\n"))
	return err
}

func (m *machine) setupRuntimeDir(dir string) error {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		m.runtimeDir = dir
		return nil
	}
	d, err := os.MkdirTemp("", "kitrun-vm-")
	if err != nil {
		return err
	}
	m.runtimeDir, m.ownDir = d, true
	return nil
}

func (m *machine) removeRuntimeDir() {
	if m.ownDir {
		os.RemoveAll(m.runtimeDir)
	} else {
		os.Remove(filepath.Join(m.runtimeDir, "qmp.sock"))
	}
}

func (m *machine) closeFiles() {
	for _, f := range m.files {
		f.Close()
	}
}

// Kill implements hypervisor.Machine.
func (m *machine) Kill() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	// The whole group: QEMU may have helpers.
	err := unix.Kill(-m.info.PID, unix.SIGKILL)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill qemu (pid %d): %w", m.info.PID, err)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("qemu (pid %d) still running 5s after SIGKILL", m.info.PID)
	}
}

// Stop implements hypervisor.Machine: power-off request → grace → QMP quit →
// SIGKILL. Every step's error is kept; success is the process being gone.
func (m *machine) Stop(ctx context.Context, grace time.Duration) error {
	m.stopOnce.Do(func() { m.stopErr = m.stop(ctx, grace) })
	return m.stopErr
}

func (m *machine) stop(ctx context.Context, grace time.Duration) error {
	var errs multierror.Group
	var result *multierror.Error
	if m.exited() {
		return nil
	}
	// Ask kitinit first (it runs onshutdown tasks), and press the ACPI
	// button too for a guest whose channel is not up.
	stepCtx, cancel := context.WithTimeout(ctx, time.Second)
	errs.Go(func() error {
		if err := m.Send(stepCtx, initproto.CmdPoweroff); err != nil && !m.exited() {
			return fmt.Errorf("poweroff command: %w", err)
		}
		return nil
	})
	errs.Go(func() error {
		if err := m.Powerdown(stepCtx); err != nil && !m.exited() {
			return fmt.Errorf("system_powerdown: %w", err)
		}
		return nil
	})
	if err := errs.Wait(); err != nil {
		result = multierror.Append(result, err.Errors...)
	}
	cancel()
	if m.waitDone(ctx, grace) {
		return nil // a clean power-off forgives a failed request
	}
	result = multierror.Append(result, fmt.Errorf("guest did not power off within %s", grace))

	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := m.runQMP(qctx, "quit", nil)
	cancel()
	if err != nil && !m.exited() {
		result = multierror.Append(result, fmt.Errorf("qmp quit: %w", err))
	}
	if m.waitDone(ctx, 2*time.Second) {
		return result.ErrorOrNil()
	}
	if err := m.Kill(); err != nil {
		result = multierror.Append(result, err)
	}
	return result.ErrorOrNil()
}

func (m *machine) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
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

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
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
		k := len(p)
		if k > l.n {
			k = l.n
		}
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// lineRing keeps the last lines of the console.
type lineRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newLineRing(n int) *lineRing { return &lineRing{lines: make([]string, n)} }

func (r *lineRing) Add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = s
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

func (r *lineRing) Last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// Version reports the QEMU version that would run guests of arch a, e.g.
// "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", or "" if unknown.
func (b *Backend) Version(a arch.Arch) string {
	byName, ok := machines[a.Name]
	if !ok {
		return ""
	}
	for _, mt := range byName {
		bin, err := b.findBinary(mt.binary)
		if err != nil {
			return ""
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			return ""
		}
		line := firstLine(strings.TrimSpace(string(out)))
		return strings.TrimPrefix(line, "QEMU emulator version ")
	}
	return ""
}
