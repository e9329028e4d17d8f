package hyperv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Driver is what the backend asks of Hyper-V (Packer's model: a driver
// interface with one PowerShell implementation behind it, so that the
// backend's logic is tested without Windows).
type Driver interface {
	// Verify checks that Hyper-V answers and that the account may run
	// VMs, with what to do if not.
	Verify(ctx context.Context) error
	// Version is Hyper-V's version ("Hyper-V 10.0.22621.1").
	Version(ctx context.Context) (string, error)
	// Upload copies a file into VM vm's directory on the Windows host.
	Upload(ctx context.Context, vm, name string, r io.Reader, size int64) (Upload, error)
	// OpenCOM connects to COM port n of VM vm. It returns once the
	// connection is being made, before the VM exists; the stream starts
	// when the VM does and ends with it.
	OpenCOM(ctx context.Context, vm string, n int) (io.ReadWriteCloser, error)
	// DialGuest connects to a TCP port of VM vm's guest.
	DialGuest(ctx context.Context, vm string, port int) (io.ReadWriteCloser, error)
	// Start creates VM c.Name and starts it.
	Start(ctx context.Context, c VMConfig) (VMStatus, error)
	// Status is VM vm's state; Found is false when there is no such VM.
	Status(ctx context.Context, vm string) (VMStatus, error)
	// PowerButton types Ctrl+Alt+Del on the VM's keyboard (see
	// platform.go: kitinit powers off on it); false when the VM has no
	// keyboard now.
	PowerButton(ctx context.Context, vm string) (bool, error)
	// TurnOff turns VM vm off at once (the power cord).
	TurnOff(ctx context.Context, vm string) error
	// Remove removes VM vm and its directory, turning it off first;
	// destroyed marks it so (its Notes) for the process that started it.
	Remove(ctx context.Context, vm string, destroyed bool) error
}

// Upload is where an uploaded file went.
type Upload struct {
	Path      string `json:"path"`
	Directory string `json:"directory"` // the VMs' directory (vm-dir)
	Size      int64  `json:"size"`
}

// VMConfig is a VM to create.
type VMConfig struct {
	Name        string
	Directory   string // the VMs' directory: the VM's files go in Directory\Name
	MemoryBytes int64
	CPUs        int
	Disk        string // the image's path on the Windows host
	DVD         bool
	Seed        string // the seed disk's path on the Windows host; "" attaches none
	Channel     bool   // wire COM2 for kitinit's channel
	Switch      string // "" leaves the network adapter unconnected
}

// VMStatus is Get-VM's view of a VM.
type VMStatus struct {
	Found          bool    `json:"found"`
	Name           string  `json:"name"`
	ID             string  `json:"id"`
	State          string  `json:"state"` // Running, Off, Starting, Stopping, …
	MemoryAssigned int64   `json:"memoryAssigned"`
	MemoryDemand   int64   `json:"memoryDemand"`
	MemoryStartup  int64   `json:"memoryStartup"`
	ProcessorCount int     `json:"processorCount"`
	UptimeSeconds  float64 `json:"uptimeSeconds"`
	Notes          string  `json:"notes"`
}

// Running says whether the VM exists and is not off.
func (s VMStatus) Running() bool { return s.Found && s.State != "Off" }

// HostInfo is Write-KitrunHost's answer.
type HostInfo struct {
	HyperV     bool     `json:"hyperv"`
	Admin      bool     `json:"admin"`
	OS         string   `json:"os"`
	PowerShell string   `json:"powershell"`
	Version    string   `json:"version"`
	VMPath     string   `json:"vmPath"`
	Switches   []string `json:"switches"`
}

// ScriptError is a script that failed: the step it was at and what
// PowerShell said.
type ScriptError struct {
	Script string // which script ("start", "status", …)
	Step   string
	Msg    string
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("hyperv: %s script failed at step %q: %s", e.Script, e.Step, e.Msg)
}

// PowerShellDriver is the Driver that runs PowerShell scripts through a
// Runner.
type PowerShellDriver struct {
	Runner Runner
	// Switch is the virtual switch networked guests are connected to.
	Switch string
	// Directory holds the VMs' files, VM by VM ("": Hyper-V's
	// VirtualMachinePath\kitrun).
	Directory string
	// Timeout bounds each script that is not a stream (default 2
	// minutes).
	Timeout time.Duration

	hostMu sync.Mutex
	host   *HostInfo
}

var _ Driver = (*PowerShellDriver)(nil)

func (d *PowerShellDriver) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 2 * time.Minute
}

// run renders and runs a script to its end and decodes its last JSON line
// into out (nil: none expected).
func (d *PowerShellDriver) run(ctx context.Context, name string, data any, stdin io.Reader, out any) error {
	script, err := render(name, data)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	var stdout, stderr bytes.Buffer
	err = d.Runner.Exec(ctx, script, stdin, &stdout, &stderr)
	line := lastJSONLine(stdout.Bytes())
	var se struct {
		Error *string `json:"error"`
		Step  string  `json:"step"`
	}
	if line != nil && json.Unmarshal(line, &se) == nil && se.Error != nil {
		return &ScriptError{Script: name, Step: se.Step, Msg: *se.Error}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("hyperv: %s script (%s): no answer within %s", name, d.Runner, d.timeout())
		}
		msg := tail(stderr.Bytes(), 2000)
		if msg == "" {
			msg = tail(stdout.Bytes(), 2000)
		}
		if msg == "" {
			return fmt.Errorf("hyperv: %s script (%s): %w", name, d.Runner, err)
		}
		return fmt.Errorf("hyperv: %s script (%s): %w: %s", name, d.Runner, err, msg)
	}
	if out == nil {
		return nil
	}
	if line == nil {
		return fmt.Errorf("hyperv: %s script (%s) printed no result: %s", name, d.Runner, tail(stdout.Bytes(), 500))
	}
	if err := json.Unmarshal(line, out); err != nil {
		return fmt.Errorf("hyperv: %s script: bad result %q: %w", name, line, err)
	}
	return nil
}

// lastJSONLine is the last line of out that is a JSON object.
func lastJSONLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := bytes.TrimSpace(lines[i])
		if len(l) > 0 && l[0] == '{' {
			return l
		}
	}
	return nil
}

// Host asks the Windows host about Hyper-V (once it has answered).
func (d *PowerShellDriver) Host(ctx context.Context) (HostInfo, error) {
	d.hostMu.Lock()
	defer d.hostMu.Unlock()
	if d.host != nil {
		return *d.host, nil
	}
	var h HostInfo
	if err := d.run(ctx, "host", nil, nil, &h); err != nil {
		return h, err
	}
	d.host = &h
	return h, nil
}

// Verify implements Driver.
func (d *PowerShellDriver) Verify(ctx context.Context) error {
	h, err := d.Host(ctx)
	if err != nil {
		return err
	}
	var problems []string
	if !h.HyperV {
		problems = append(problems, "the Hyper-V PowerShell module is missing: enable Hyper-V (Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V-All) and reboot")
	}
	if !h.Admin {
		problems = append(problems, "the account is neither an administrator nor in Hyper-V Administrators: add it (Add-LocalGroupMember -Group 'Hyper-V Administrators' -Member USER) and log in again")
	}
	if h.HyperV && d.Switch != "" && !contains(h.Switches, d.Switch) {
		problems = append(problems, fmt.Sprintf("there is no virtual switch %q (switches: %s); create one or pass --backend-opt switch=NAME", d.Switch, strings.Join(h.Switches, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("hyperv (%s): %s", d.Runner, strings.Join(problems, "; "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Version implements Driver.
func (d *PowerShellDriver) Version(ctx context.Context) (string, error) {
	h, err := d.Host(ctx)
	if err != nil {
		return "", err
	}
	if h.Version == "" {
		return "", fmt.Errorf("hyperv (%s): Hyper-V is not installed", d.Runner)
	}
	return h.Version, nil
}

// Upload implements Driver.
func (d *PowerShellDriver) Upload(ctx context.Context, vm, name string, r io.Reader, size int64) (Upload, error) {
	var u Upload
	err := d.run(ctx, "receive", receiveData{Name: vm, Directory: d.Directory, File: name}, r, &u)
	if err != nil {
		return u, err
	}
	if u.Size != size {
		return u, fmt.Errorf("hyperv: uploading %s: the Windows host received %d of %d bytes", name, u.Size, size)
	}
	return u, nil
}

// Start implements Driver.
func (d *PowerShellDriver) Start(ctx context.Context, c VMConfig) (VMStatus, error) {
	data := startData{
		Name: c.Name, VMPath: c.Directory, MemoryBytes: c.MemoryBytes, CPUs: c.CPUs,
		Disk: c.Disk, DVD: c.DVD, Seed: c.Seed, Console: PipePath(PipeName(c.Name, 1)), Switch: c.Switch,
	}
	if c.Channel {
		data.Channel = PipePath(PipeName(c.Name, 2))
	}
	var s VMStatus
	err := d.run(ctx, "start", data, nil, &s)
	return s, err
}

// Status implements Driver.
func (d *PowerShellDriver) Status(ctx context.Context, vm string) (VMStatus, error) {
	var s VMStatus
	err := d.run(ctx, "status", nameData{vm}, nil, &s)
	return s, err
}

// PowerButton implements Driver.
func (d *PowerShellDriver) PowerButton(ctx context.Context, vm string) (bool, error) {
	var r struct {
		Sent   bool   `json:"sent"`
		Reason string `json:"reason"`
	}
	err := d.run(ctx, "power-button", nameData{vm}, nil, &r)
	return r.Sent, err
}

// TurnOff implements Driver.
func (d *PowerShellDriver) TurnOff(ctx context.Context, vm string) error {
	return d.run(ctx, "turn-off", nameData{vm}, nil, nil)
}

// Remove implements Driver.
func (d *PowerShellDriver) Remove(ctx context.Context, vm string, destroyed bool) error {
	return d.run(ctx, "remove", removeData{Name: vm, Directory: d.Directory, Destroyed: destroyed}, nil, nil)
}

// relayTimeout is how long a relay waits for its pipe (the VM's start) or
// for the guest's address.
const relayTimeout = 120

// OpenCOM implements Driver. Where PowerShell runs on this Windows
// machine the pipe is opened directly (go-winio); elsewhere a relay
// script on the Windows host connects to it and its standard input and
// output are the stream.
func (d *PowerShellDriver) OpenCOM(ctx context.Context, vm string, n int) (io.ReadWriteCloser, error) {
	name := PipeName(vm, n)
	if d.Runner.Local() {
		if s, ok, err := openLocalPipe(ctx, name, relayTimeout*time.Second); ok {
			return s, err
		}
	}
	return d.relay(ctx, "relay", relayData{Pipe: name, Timeout: relayTimeout}, "kitrun-relay: waiting")
}

// DialGuest implements Driver.
func (d *PowerShellDriver) DialGuest(ctx context.Context, vm string, port int) (io.ReadWriteCloser, error) {
	return d.relay(ctx, "guest-port", guestPortData{Name: vm, Port: port, Timeout: 30}, "kitrun-relay: connected")
}

// relay starts a relay script and returns its stream once it has said
// ready on standard error.
func (d *PowerShellDriver) relay(ctx context.Context, name string, data any, ready string) (io.ReadWriteCloser, error) {
	script, err := render(name, data)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	s := &stream{r: outR, w: inW, cancel: cancel, done: make(chan struct{})}
	go func() {
		err := d.Runner.Exec(rctx, script, inR, outW, errW)
		s.err = err
		outW.CloseWithError(io.EOF)
		errW.Close()
		inR.Close()
		close(s.done)
	}()
	// Standard error: the ready line, then kept for errors.
	readyCh := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errR)
		signalled := false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			// Contains: Windows PowerShell may put CLIXML progress
			// records on standard error without ending their line.
			if !signalled && strings.Contains(line, ready) {
				signalled = true
				close(readyCh)
				continue
			}
			s.addErr(line)
		}
		io.Copy(io.Discard, errR)
	}()
	t := time.NewTimer(d.timeout())
	defer t.Stop()
	select {
	case <-readyCh:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("hyperv: %s script (%s) ended before it was ready: %v: %s", name, d.Runner, s.err, s.stderrText())
	case <-t.C:
		s.Close()
		return nil, fmt.Errorf("hyperv: %s script (%s): not ready within %s: %s", name, d.Runner, d.timeout(), s.stderrText())
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

// stream is a relay script's standard output (read) and input (write).
type stream struct {
	r      *io.PipeReader
	w      *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	mu     sync.Mutex
	stderr []string
}

func (s *stream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *stream) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close ends the relay and waits (briefly) for it to be gone.
func (s *stream) Close() error {
	s.w.Close()
	s.cancel()
	s.r.Close()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		return errors.New("hyperv: a relay did not end within 10s")
	}
	return nil
}

func (s *stream) addErr(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stderr) < 50 {
		s.stderr = append(s.stderr, line)
	}
}

func (s *stream) stderrText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.stderr, "\n")
}
