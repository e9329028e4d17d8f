// Package initproto is the contract between the host and kitinit, the guest's
// PID 1: the configuration the assembler writes into the image (ConfigPath),
// the events kitinit reports on its event channel, and the commands the host
// may send back on that channel. Both sides import it, so it must stay free of
// host-only or guest-only dependencies.
package initproto

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// ConfigPath is where the assembler puts kitinit's configuration.
const ConfigPath = "/etc/kitinit.json"

// Kernel command-line parameters the hypervisor sets for kitinit.
const (
	// ParamChannel names the guest device of the event channel, e.g.
	// kitrun.channel=/dev/ttyS1, or ChannelConsole. Absent: kitinit
	// reports on no channel.
	ParamChannel = "kitrun.channel"
	// ParamChannelModules names the modules (comma separated) this machine
	// type needs for its channel and NIC, e.g. virtio_mmio,virtio_console.
	// kitinit loads each, dependencies first, from Config.Available, before
	// it opens the channel. The image holds the union for every machine of
	// its arch; only the booted machine's share is loaded.
	ParamChannelModules = "kitrun.chanmods"
	// ParamLateModules names the machine's modules (comma separated) that
	// nothing before all-ready needs, e.g. pvpanic_mmio: kitinit loads
	// them, dependencies first, once the boot has settled, beside
	// Config.LateModules. Under TCG a module's load costs tens of
	// milliseconds of the one vCPU the services start on.
	ParamLateModules = "kitrun.latemods"
	// ParamSeed says where kitinit finds this boot's own files (per-boot
	// SSH keys) when the boot cannot append them to the initramfs (a disk
	// image): SeedFwCfg reads them from QEMU's fw_cfg. kitinit unpacks
	// them over the image's files before any task or service starts.
	ParamSeed = "kitrun.seed"
)

// Seed sources (values of ParamSeed).
const (
	// SeedFwCfg: the newc archive QEMU's fw_cfg device holds under the
	// name SeedFwCfgName, which the guest reads at SeedFwCfgPath once the
	// device's module is loaded (ParamChannelModules).
	SeedFwCfg     = "fwcfg"
	SeedFwCfgName = "opt/org.kitrun/seed"
	SeedFwCfgPath = "/sys/firmware/qemu_fw_cfg/by_name/" + SeedFwCfgName + "/raw"

	// The clouds have no fw_cfg: kitinit fetches the seed from the
	// platform's instance metadata service at MetadataAddr once the
	// network is up. SeedAWS: EC2's IMDSv2 user data (the archive
	// itself); SeedGCE: the instance metadata attribute SeedGCEKey
	// (base64); SeedAzure: the VM's userData from Azure IMDS (base64).
	SeedAWS   = "aws-imds"
	SeedGCE   = "gce-metadata"
	SeedAzure = "azure-imds"
	// SeedDisk: a small disk the hypervisor attaches for this boot (on
	// Hyper-V, which has neither fw_cfg nor a metadata service), holding
	// a SeedDiskHeader and then the archive; kitinit scans the block
	// devices for it once the machine's SeedModules are loaded.
	SeedDisk = "disk"
	// SeedGCEKey is the instance metadata key the seed travels under on
	// Compute Engine.
	SeedGCEKey = "kitrun-seed"
	// MetadataAddr is where the clouds serve instance metadata, on the
	// link-local network.
	MetadataAddr = "169.254.169.254:80"
	// MaxSeed bounds a seed fetched over the network (as received, before
	// any base64 decoding). EC2 takes at most 16 KiB of user data.
	MaxSeed = 64 << 10
)

// SeedOverNetwork says whether a seed source is reached over the guest's
// network (so an image without network cannot use it).
func SeedOverNetwork(source string) bool {
	switch source {
	case SeedAWS, SeedGCE, SeedAzure:
		return true
	}
	return false
}

// CmdlineSeed returns the seed source a kernel command line names, "" if
// none.
func CmdlineSeed(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, ParamSeed+"="); ok {
			return v
		}
	}
	return ""
}

// Config is kitinit's whole configuration. It is derived from the spec by the
// assembler; kitinit never sees YAML.
type Config struct {
	Hostname string   `json:"hostname"`
	Modules  []string `json:"modules,omitempty"` // absolute .ko paths in load order
	// Available lists every module in the image by name, for the
	// machine-specific ones named on the kernel command line.
	Available map[string]Module `json:"available,omitempty"`
	// LateModules are loaded after all-ready (e.g. the power button), so
	// they cost nothing on the path to ready.
	LateModules []string  `json:"late_modules,omitempty"`
	Network     *Network  `json:"network,omitempty"`
	Onboot      []Task    `json:"onboot,omitempty"`
	Onshutdown  []Task    `json:"onshutdown,omitempty"`
	Services    []Service `json:"services,omitempty"`
}

// Module is a kernel module in the image.
type Module struct {
	Path    string   `json:"path"`
	Depends []string `json:"depends,omitempty"` // names, each in Available
}

// Network configures the first non-loopback interface: statically from
// Address, Gateway and DNS, or by DHCPv4 (then the three are empty).
type Network struct {
	Mode    string `json:"mode"`              // NetworkStatic | NetworkDHCP
	Address string `json:"address,omitempty"` // CIDR
	Gateway string `json:"gateway,omitempty"`
	DNS     string `json:"dns,omitempty"`
}

// Network modes. The assembler chooses: DHCP where neither the spec nor
// the platform gives an address.
const (
	NetworkStatic = "static"
	NetworkDHCP   = "dhcp"
)

// Exec is how to run one program.
type Exec struct {
	Path string            `json:"path"` // absolute path in the image
	Args []string          `json:"args,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
	Dir  string            `json:"dir,omitempty"`
	UID  uint32            `json:"uid"`
	GID  uint32            `json:"gid"`
	// Sandbox confines the program; nil runs it as a plain process.
	Sandbox *Sandbox `json:"sandbox,omitempty"`
}

// Task is an onboot or onshutdown step, run to completion.
type Task struct {
	Name    string   `json:"name"`
	Exec    Exec     `json:"exec"`
	Timeout Duration `json:"timeout"`
}

// Service is a supervised long-running program.
type Service struct {
	Name    string  `json:"name"`
	Exec    Exec    `json:"exec"`
	Restart Restart `json:"restart"`
	Ready   *Ready  `json:"ready,omitempty"`
}

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Restart is a restart policy with exponential backoff.
type Restart struct {
	Policy      string   `json:"policy"`
	Backoff     Duration `json:"backoff"`
	MaxBackoff  Duration `json:"max_backoff"`
	MaxRestarts int      `json:"max_restarts,omitempty"`
}

// Ready is a readiness probe; exactly one kind is set.
type Ready struct {
	TCP      string   `json:"tcp,omitempty"` // host:port
	Unix     string   `json:"unix,omitempty"`
	File     string   `json:"file,omitempty"`
	Exec     []string `json:"exec,omitempty"`
	Log      string   `json:"log,omitempty"`
	Timeout  Duration `json:"timeout"`
	Interval Duration `json:"interval"`
}

// Duration is a time.Duration that reads and writes as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

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

// Event kinds, in the order a healthy boot reports them.
const (
	EvInitStart     = "init-start"
	EvModulesLoaded = "modules-loaded"
	EvNetworkUp     = "network-up"
	EvTaskDone      = "task-done"
	EvTaskFailed    = "task-failed"
	EvServiceStart  = "service-started"
	EvServiceReady  = "service-ready"
	EvServiceFailed = "service-failed" // exited and will not be restarted, or probe timed out
	EvServiceExit   = "service-exited" // exited, will be restarted
	EvAllReady      = "all-ready"
	EvShutdown      = "shutdown"      // shutdown started (Detail says why)
	EvShutdownDone  = "shutdown-done" // about to power off
	EvError         = "error"         // kitinit itself hit a problem (Detail)
	EvMemory        = "memory"        // answer to CmdMemory
	// EvReseeded answers CmdReseed once the fresh state is applied
	// (Detail says what was; Data has "entropy_bytes" and "files"),
	// after an EvServiceReady for each service ready and running then.
	EvReseeded = "reseeded"
)

// Event is one line on the event channel. Uptime is the guest's
// CLOCK_BOOTTIME in seconds when the event happened: comparable between
// events, never with host clocks.
type Event struct {
	Uptime float64  `json:"t"`
	Kind   string   `json:"ev"`
	Name   string   `json:"name,omitempty"`   // task or service
	Detail string   `json:"detail,omitempty"` // human-readable
	Status *int     `json:"status,omitempty"` // exit status, when a process ended
	Log    []string `json:"log,omitempty"`    // last output lines, on failures
	// Data carries kind-specific figures (e.g. memory in bytes).
	Data map[string]int64 `json:"data,omitempty"`
}

// Prefix starts every event line, so that the host can tell events from
// noise (a kernel message that strays onto the channel, a half line after
// a reset) and, where the channel shares the console, from console output.
const Prefix = "@kitrun "

// A line is Prefix, the CRC-32C of the JSON as 8 hex digits, a space, the
// JSON and a newline:
//
//	@kitrun 1a2b3c4d {"t":1.234,"ev":"all-ready"}
//
// The checksum catches lines that other output interleaved with (a kernel
// message printed in the middle of an event on a shared console) and lines
// cut short; such lines are reported, never half-believed.
//
// castagnoli is CRC-32C's table (the polynomial of iSCSI and ext4's
// metadata checksums), for event lines and the seed disk alike.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxLine bounds an event line, newline included. kitinit keeps its
// events far below it (service logs are cut to a few short lines); the
// host discards longer lines unread, so a guest cannot make it buffer more.
const MaxLine = 64 << 10

// ChannelConsole, as the value of ParamChannel, means the event channel
// shares the console: kitinit writes its framed events among the console's
// lines, and the host picks them out. There is no way back to kitinit then:
// the host powers the guest off with the power button.
const ChannelConsole = "console"

// Encode renders an event as one line, Prefix included, newline terminated.
func (e Event) Encode() []byte {
	line := make([]byte, 0, 128)
	line = append(line, Prefix+"01234567 "...)
	line = appendEventJSON(line, e)
	sum := crc32.Checksum(line[len(Prefix)+9:], castagnoli)
	for i := range 8 {
		line[len(Prefix)+i] = hexDigits[sum>>(28-4*i)&0xf]
	}
	return append(line, '\n')
}

// IsEventLine says whether a line (with or without its newline) claims to
// be an event: it starts with Prefix. Such a line that DecodeEvent rejects
// is a damaged event, not console output.
func IsEventLine(line string) bool {
	return strings.HasPrefix(strings.TrimLeft(line, "\r"), Prefix)
}

// DecodeEvent parses a line written by Encode (with or without its
// newline). The line must start with Prefix (carriage returns aside) and
// its checksum must match.
func DecodeEvent(line string) (Event, error) {
	if len(line) > MaxLine {
		return Event{}, fmt.Errorf("event line of %d bytes, over the limit of %d", len(line), MaxLine)
	}
	body, ok := strings.CutPrefix(strings.Trim(line, "\r\n"), Prefix)
	if !ok {
		return Event{}, fmt.Errorf("not an event line: %q", clip(line))
	}
	sumHex, js, ok := strings.Cut(body, " ")
	if !ok || len(sumHex) != 8 {
		return Event{}, fmt.Errorf("event line without a checksum: %q", clip(line))
	}
	want, err := strconv.ParseUint(sumHex, 16, 32)
	if err != nil {
		return Event{}, fmt.Errorf("event line with a malformed checksum: %q", clip(line))
	}
	if got := crc32.Checksum([]byte(js), castagnoli); uint32(want) != got {
		return Event{}, fmt.Errorf("event line damaged (checksum %08x, content %08x): %q", want, got, clip(line))
	}
	var e Event
	if err := json.Unmarshal([]byte(js), &e); err != nil {
		return Event{}, fmt.Errorf("bad event line %q: %w", clip(line), err)
	}
	if e.Kind == "" {
		return Event{}, fmt.Errorf("event line without a kind: %q", clip(line))
	}
	return e, nil
}

// clip shortens a line for an error message.
func clip(s string) string {
	const n = 200
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Commands the host writes to the channel, one per line.
const (
	CmdPoweroff = "poweroff" // run onshutdown, stop services, power off
	CmdReboot   = "reboot"
	CmdMemory   = "memory" // answer with an EvMemory event
	// CmdReseed, followed by a space and Reseed.Encode's text, gives a VM
	// restored from a snapshot its own per-run state; answered by
	// EvReseeded.
	CmdReseed = "reseed"
)

// MaxCommandLine is the longest command line kitinit reads (a reseed with
// its keys is about 3 KiB); longer lines are refused whole.
const MaxCommandLine = 64 << 10

// Reseed is the per-run state a VM restored from a snapshot needs, since
// the snapshot holds the state of the boot it was taken from: that boot's
// SSH keys, its CRNG state and its wall clock.
type Reseed struct {
	// UnixNano is the host's wall clock when it sent the command; the
	// guest sets CLOCK_REALTIME to it.
	UnixNano int64 `json:"time"`
	// Entropy is credited to the guest kernel's pool, and the CRNG reseeded
	// from it, before anything else is applied.
	Entropy []byte `json:"entropy"`
	// Files is a newc archive unpacked over the root filesystem, as the
	// boot's seed is (ParamSeed): the fresh SSH keys, say.
	Files []byte `json:"files,omitempty"`
}

// Command is the command line (without the newline) that sends r.
func (r Reseed) Command() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	line := CmdReseed + " " + base64.StdEncoding.EncodeToString(b)
	if len(line) > MaxCommandLine {
		return "", fmt.Errorf("reseed command is %d bytes, over kitinit's %d", len(line), MaxCommandLine)
	}
	return line, nil
}

// ParseReseed decodes the argument of a reseed command.
func ParseReseed(arg string) (Reseed, error) {
	var r Reseed
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(arg))
	if err != nil {
		return r, fmt.Errorf("reseed: %w", err)
	}
	// Not json.Unmarshal: this runs in kitinit, which is kept free of
	// encoding/json (see wire.go).
	if r, err = parseReseed(b); err != nil {
		return r, fmt.Errorf("reseed: %w", err)
	}
	if r.UnixNano <= 0 {
		return r, errors.New("reseed: no wall clock time")
	}
	if len(r.Entropy) < 32 {
		return r, fmt.Errorf("reseed: %d bytes of entropy, want at least 32", len(r.Entropy))
	}
	return r, nil
}
