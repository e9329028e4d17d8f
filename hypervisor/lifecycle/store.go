package lifecycle

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/procid"
	"github.com/kitrun/kitrun/hypervisor"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/internal/statedir"
)

// File names inside a VM's directory.
const (
	MetaFile      = "meta.json"
	StateFile     = "state.json"
	ConsoleFile   = "console.log"
	EventsFile    = "events.log"
	SupervisorLog = "supervisor.log"
	ControlSocket = "control.sock"
	LockFile      = "lock"
	RuntimeDir    = "run"
	// SSHKeyFile and SSHKnownHostsFile give `kitrun ssh` (and OpenSSH) this
	// boot's client key and pinned host key; both 0600.
	SSHKeyFile        = "ssh_key"
	SSHKnownHostsFile = "ssh_known_hosts"
)

// States of a VM.
const (
	Creating = "creating" // recorded; the supervisor is starting
	Booting  = "booting"  // QEMU runs; not all-ready yet
	Ready    = "ready"    // every service is ready
	Paused   = "paused"   // vCPUs stopped (QMP stop)
	Stopping = "stopping" // a power-off is in progress
	Stopped  = "stopped"  // ended: powered off, stopped or killed on request
	Failed   = "failed"   // ended otherwise: boot failure, crash, lost supervisor
)

var states = []string{Creating, Booting, Ready, Paused, Stopping, Stopped, Failed}

// Running says whether a state is one in which a supervisor should exist.
func Running(state string) bool {
	switch state {
	case Creating, Booting, Ready, Paused, Stopping:
		return true
	}
	return false
}

// MetaVersion is the schema version of meta.json.
const MetaVersion = 1

// Meta is meta.json: what the VM is. Written when the VM is created,
// completed by the supervisor once QEMU has started.
type Meta struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// Image is the image directory booted; ImageName its manifest's name.
	Image     string `json:"image"`
	ImageName string `json:"image_name"`
	// KernelSHA256 and InitrdSHA256 are the image's digests (manifest).
	KernelSHA256 string `json:"kernel_sha256"`
	InitrdSHA256 string `json:"initrd_sha256"`
	// Spec is the spec file the image was built from, if any.
	Spec string `json:"spec,omitempty"`
	Arch string `json:"arch"`
	// Backend and BackendOptions open the backend that runs the VM
	// (hypervisor.Open).
	Backend        string             `json:"backend"`
	BackendOptions hypervisor.Options `json:"backend_options,omitempty"`
	// Format is the image format booted ("" for direct kernel boot).
	Format string `json:"format,omitempty"`
	// Resources are what was asked for ("" and "auto" are defaults);
	// MachineUsed, AccelUsed and AccelReason what the backend gave.
	hypervisor.Resources
	MachineUsed string `json:"machine_used,omitempty"`
	AccelUsed   string `json:"accel_used,omitempty"`
	AccelReason string `json:"accel_reason,omitempty"`
	// Network is the image's network mode (none, auto).
	Network string `json:"network,omitempty"`
	// Published are the forwarded TCP ports; GuestSSHPort is the image's
	// SSH port in the guest (0: none), to be found among them.
	Published    []Port `json:"published,omitempty"`
	GuestSSHPort int    `json:"guest_ssh_port,omitempty"`
	// SSHAddr is where the host reaches GuestSSHPort for this boot.
	SSHAddr string `json:"ssh_addr,omitempty"`
	// BootTimeout bounds the boot; Grace is the default power-off grace.
	BootTimeout Duration `json:"boot_timeout"`
	Grace       Duration `json:"grace"`
	// HypervisorVersion is the backend's version of its hypervisor.
	HypervisorVersion string    `json:"hypervisor_version,omitempty"`
	Created           time.Time `json:"created"`
}

// Port is a published port.
type Port struct {
	HostAddr  string `json:"host_addr"`
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
}

func (p Port) String() string { return fmt.Sprintf("%s:%d->%d", p.HostAddr, p.HostPort, p.GuestPort) }

// State is state.json: where the VM is in its life.
type State struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Failure classifies a failed boot: boot-timeout, service-failed,
	// panic, early-exit, stopped (stopped before ready) or error.
	Failure string `json:"failure,omitempty"`
	// SupervisorPID with its start time (field 22 of /proc/PID/stat, clock
	// ticks since the host booted), and the host's boot id: a pid is only
	// believed when all three match.
	SupervisorPID   int    `json:"supervisor_pid,omitempty"`
	SupervisorStart uint64 `json:"supervisor_start,omitempty"`
	BootID          string `json:"boot_id,omitempty"`
	// MachineID is the backend's ID of the machine (Meta.Backend): what
	// finds it again, or destroys it, after its supervisor is gone.
	MachineID string `json:"machine_id,omitempty"`
	// MachinePID and MachineStart are the local process that runs the
	// machine, for backends that run one (QEMU).
	MachinePID   int    `json:"machine_pid,omitempty"`
	MachineStart uint64 `json:"machine_start,omitempty"`
	// Started is when QEMU was started; Ready when all services were;
	// Stopped when the VM ended (or when its end was found out).
	Started time.Time `json:"started,omitzero"`
	Ready   time.Time `json:"ready,omitzero"`
	Stopped time.Time `json:"stopped,omitzero"`
	// ShutdownSeconds is how long the power-off took, request to exit;
	// Forced says it was forced after the grace period.
	ShutdownSeconds float64   `json:"shutdown_seconds,omitempty"`
	Forced          bool      `json:"forced,omitempty"`
	Updated         time.Time `json:"updated"`
}

// Duration is a time.Duration written as Go syntax ("1m30s") in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Store is a state directory holding one subdirectory per VM.
type Store struct {
	Dir string
	// OpenBackend opens a VM's backend by the name and options in its
	// meta.json; hypervisor.Open when nil.
	OpenBackend func(name string, o hypervisor.Options) (hypervisor.Backend, error)
}

// EnvStateDir names the environment variable that overrides the default
// state directory.
const EnvStateDir = "KITRUN_STATE_DIR"

// StateDirUsage is the help text of the commands' --state-dir flag.
const StateDirUsage = "where detached VMs keep their state (default $" + EnvStateDir + ", else vms in kitrun's state directory: $XDG_STATE_HOME/kitrun or ~/.local/state/kitrun on Linux)"

// DefaultDir is the state directory when none is given: $KITRUN_STATE_DIR,
// else kitrun's state directory's vms (statedir: ~/.local/state/kitrun/vms
// on Linux).
func DefaultDir() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	return filepath.Join(statedir.Dir(), "vms")
}

// Open returns the store at dir ("" for DefaultDir), as an absolute path:
// the supervisor runs in / and must find the same directory.
func Open(dir string) (*Store, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Store{Dir: abs}, nil
}

// VMDir is the directory of the VM name.
func (s *Store) VMDir(name string) string { return filepath.Join(s.Dir, name) }

// Path is a file of the VM name.
func (s *Store) Path(name, file string) string { return filepath.Join(s.Dir, name, file) }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// MaxNameLen bounds names, so that socket paths stay short.
const MaxNameLen = 63

// maxSocketPath is the longest unix socket path Linux takes (sun_path).
const maxSocketPath = 107

// ValidateName checks a VM name: [a-z0-9][a-z0-9_.-]*, at most 63 bytes.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("bad VM name %q: use lower-case letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("bad VM name %q: longer than %d characters", name, MaxNameLen)
	}
	return nil
}

// GenerateName makes a name from an image name and a short random suffix,
// e.g. "minimal-3f9a".
func GenerateName(base string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeft(b.String(), "_.-")
	if s == "" {
		s = "vm"
	}
	if len(s) > MaxNameLen-5 {
		s = s[:MaxNameLen-5]
	}
	var r [2]byte
	rand.Read(r[:])
	return s + "-" + hex.EncodeToString(r[:])
}

// Errors.

// NotFoundError: no VM by that name.
type NotFoundError struct {
	Name     string
	Existing []string
}

func (e *NotFoundError) Error() string {
	if len(e.Existing) == 0 {
		return fmt.Sprintf("no VM named %q; there are none (start one with `kitrun run -d SPEC`)", e.Name)
	}
	return fmt.Sprintf("no VM named %q; VMs: %s", e.Name, strings.Join(e.Existing, ", "))
}

// ExistsError: the name is taken.
type ExistsError struct{ Name string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("a VM named %q already exists; choose another --name, or remove it with `kitrun rm -f %s`", e.Name, e.Name)
}

// CorruptError: a state file cannot be read.
type CorruptError struct {
	Name string
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("VM %s: %s is unreadable (%v); `kitrun rm -f %s` removes the VM", e.Name, e.Path, e.Err, e.Name)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// StateError: the VM's state does not allow the operation.
type StateError struct {
	Name  string
	State string
	Op    string
	Hint  string
}

func (e *StateError) Error() string {
	s := fmt.Sprintf("cannot %s VM %s: it is %s", e.Op, e.Name, e.State)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// BusyError: another command holds the VM's lock.
type BusyError struct {
	Name   string
	Holder string
	Waited time.Duration
}

func (e *BusyError) Error() string {
	h := ""
	if e.Holder != "" {
		h = " (" + e.Holder + ")"
	}
	return fmt.Sprintf("VM %s is busy: another kitrun command holds its lock%s; gave up after %s", e.Name, h, e.Waited.Round(time.Millisecond))
}

// Names lists the VMs in the store, sorted.
func (s *Store) Names() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidateName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// exists checks that name is a VM of the store.
func (s *Store) exists(name string) error {
	if ValidateName(name) == nil {
		if st, err := os.Stat(s.VMDir(name)); err == nil && st.IsDir() {
			return nil
		}
	}
	names, _ := s.Names()
	return &NotFoundError{Name: name, Existing: names}
}

// Create records a new VM, atomically: its files are written into a hidden
// temporary directory which is then renamed to the VM's name, failing with
// an ExistsError if that name is taken.
func (s *Store) Create(m Meta, st State) error {
	if err := ValidateName(m.Name); err != nil {
		return err
	}
	if p := s.Path(m.Name, ControlSocket); len(p) > maxSocketPath {
		return fmt.Errorf("state directory %s is too deep: the control socket path %s would exceed %d bytes; use a shorter --state-dir or name", s.Dir, p, maxSocketPath)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	target := s.VMDir(m.Name)
	if _, err := os.Lstat(target); err == nil {
		return &ExistsError{Name: m.Name}
	}
	tmp, err := os.MkdirTemp(s.Dir, ".creating-"+m.Name+"-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if m.Version == 0 {
		m.Version = MetaVersion
	}
	if err := writeJSON(filepath.Join(tmp, MetaFile), m); err != nil {
		return err
	}
	if st.Updated.IsZero() {
		st.Updated = time.Now()
	}
	if err := writeJSON(filepath.Join(tmp, StateFile), st); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, LockFile), nil, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if err := renameNoReplace(tmp, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &ExistsError{Name: m.Name}
		}
		return fmt.Errorf("creating VM %s: %w", m.Name, err)
	}
	ok = true
	return nil
}

// ReadMeta reads meta.json.
func (s *Store) ReadMeta(name string) (Meta, error) {
	var m Meta
	if err := s.exists(name); err != nil {
		return m, err
	}
	err := s.readJSON(name, MetaFile, &m)
	if m.Backend == "" {
		m.Backend = "qemu" // recorded before there were backends to choose
	}
	if err == nil && m.Name != name {
		err = &CorruptError{Name: name, Path: s.Path(name, MetaFile), Err: fmt.Errorf("it names VM %q", m.Name)}
	}
	return m, err
}

// ReadState reads state.json.
func (s *Store) ReadState(name string) (State, error) {
	var st State
	if err := s.exists(name); err != nil {
		return st, err
	}
	err := s.readJSON(name, StateFile, &st)
	if err == nil && st.MachineID == "" {
		// Recorded before there were backends: QEMU's pid and start time.
		var legacy struct {
			PID   int    `json:"qemu_pid"`
			Start uint64 `json:"qemu_start"`
		}
		if s.readJSON(name, StateFile, &legacy) == nil && legacy.PID != 0 {
			st.MachinePID, st.MachineStart = legacy.PID, legacy.Start
			st.MachineID = procid.ID{PID: legacy.PID, Start: legacy.Start}.String()
		}
	}
	if err == nil && !slices.Contains(states, st.State) {
		err = &CorruptError{Name: name, Path: s.Path(name, StateFile), Err: fmt.Errorf("unknown state %q", st.State)}
	}
	return st, err
}

// WriteMeta replaces meta.json atomically.
func (s *Store) WriteMeta(m Meta) error {
	if m.Version == 0 {
		m.Version = MetaVersion
	}
	return writeJSON(s.Path(m.Name, MetaFile), m)
}

// WriteState replaces state.json atomically.
func (s *Store) WriteState(name string, st State) error {
	st.Updated = time.Now()
	return writeJSON(s.Path(name, StateFile), st)
}

func (s *Store) readJSON(name, file string, v any) error {
	p := s.Path(name, file)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &CorruptError{Name: name, Path: p, Err: errors.New("missing")}
		}
		return &CorruptError{Name: name, Path: p, Err: err}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &CorruptError{Name: name, Path: p, Err: errors.New("empty")}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &CorruptError{Name: name, Path: p, Err: fmt.Errorf("not valid JSON: %v", err)}
	}
	return nil
}

// writeJSON writes v to path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	return atomicfile.Write(path, b, 0o644)
}

// removeDir deletes a VM's directory: renamed away first, so that no reader
// ever sees half of it.
func (s *Store) removeDir(name string) error {
	dir := s.VMDir(name)
	tmp := filepath.Join(s.Dir, fmt.Sprintf(".removing-%s-%d", name, time.Now().UnixNano()))
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("removing VM %s: %w", name, err)
	}
	return os.RemoveAll(tmp)
}

// cleanLeftovers removes hidden creation or removal directories older than
// age, left by a command that died half-way.
func (s *Store) cleanLeftovers(age time.Duration) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !(strings.HasPrefix(n, ".creating-") || strings.HasPrefix(n, ".removing-")) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			os.RemoveAll(filepath.Join(s.Dir, n))
		}
	}
}
