//go:build linux

package hypervfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// spec is a command's parameters: which it requires, which it allows.
type spec struct {
	required, optional []string
}

var specs = map[string]spec{
	"New-VM":                   {[]string{"Name", "Generation", "MemoryStartupBytes", "NoVHD", "Path"}, nil},
	"Set-VM":                   {[]string{"Name"}, []string{"Notes", "AutomaticStartAction", "AutomaticStopAction", "CheckpointType"}},
	"Set-VMMemory":             {[]string{"VMName"}, []string{"DynamicMemoryEnabled", "StartupBytes"}},
	"Set-VMProcessor":          {[]string{"VMName", "Count"}, nil},
	"Add-VMHardDiskDrive":      {[]string{"VMName", "Path"}, []string{"ControllerType", "ControllerNumber", "ControllerLocation"}},
	"Add-VMDvdDrive":           {[]string{"VMName", "Path"}, nil},
	"Get-VMHardDiskDrive":      {[]string{"VMName"}, nil},
	"Get-VMDvdDrive":           {[]string{"VMName"}, nil},
	"Set-VMFirmware":           {[]string{"VMName"}, []string{"EnableSecureBoot", "SecureBootTemplate", "FirstBootDevice"}},
	"Set-VMComPort":            {[]string{"VMName", "Number", "Path"}, nil},
	"Connect-VMNetworkAdapter": {[]string{"VMName", "SwitchName"}, nil},
	"Start-VM":                 {[]string{"Name"}, nil},
	"Stop-VM":                  {[]string{"Name"}, []string{"TurnOff", "Force", "Confirm"}},
	"Write-KitrunHost":         {nil, nil},
	"Write-KitrunVM":           {[]string{"Name"}, nil},
	"Receive-KitrunFile":       {[]string{"VMName", "Directory", "File"}, nil},
	"Connect-KitrunPipe":       {[]string{"Name", "TimeoutSeconds"}, nil},
	"Connect-KitrunGuestPort":  {[]string{"VMName", "Port", "TimeoutSeconds"}, nil},
	"Send-KitrunCtrlAltDel":    {[]string{"Name"}, nil},
	"Remove-KitrunVM":          {[]string{"Name", "Directory", "Destroyed"}, nil},
}

// command runs one command and returns its output.
func (r *run) command(c *command) (string, error) {
	sp, ok := specs[c.name]
	if !ok {
		return "", fmt.Errorf("the fake has no command %s", c.name)
	}
	for _, p := range sp.required {
		if _, ok := c.params[p]; !ok {
			return "", fmt.Errorf("%s: missing -%s", c.name, p)
		}
	}
	for p := range c.params {
		if !slices.Contains(sp.required, p) && !slices.Contains(sp.optional, p) {
			return "", fmt.Errorf("%s: the fake does not know -%s", c.name, p)
		}
	}
	// Nested commands first, as PowerShell evaluates arguments.
	for k, v := range c.params {
		if v.nested != nil {
			out, err := r.command(v.nested)
			if err != nil {
				return "", err
			}
			v.s = out
			c.params[k] = v
		}
	}
	r.commands = append(r.commands, c.String())
	s := func(k string) string { return c.params[k].s }
	h := r.h
	switch c.name {
	case "Write-KitrunHost":
		return jsonLine(map[string]any{"hyperv": true, "admin": true, "os": "kitrun fake Windows host",
			"powershell": "fake", "version": "Hyper-V (kitrun fake: QEMU TCG)", "vmPath": filepath.Join(h.Dir, "vms"),
			"switches": h.Switches}), nil
	case "Write-KitrunVM":
		v := h.get(s("Name"))
		if v == nil {
			return jsonLine(map[string]any{"found": false, "name": s("Name")}), nil
		}
		return jsonLine(v.status()), nil
	case "Receive-KitrunFile":
		dir := s("Directory")
		if dir == "" {
			dir = filepath.Join(h.Dir, "vms")
		}
		vmDir := filepath.Join(dir, s("VMName"))
		if err := os.MkdirAll(vmDir, 0o700); err != nil {
			return "", scriptError{err.Error()}
		}
		r.stream = &stream{Kind: "receive", Path: filepath.Join(vmDir, s("File")), Directory: dir}
		return "", nil
	case "Connect-KitrunPipe":
		t, err := r.int(c, "TimeoutSeconds")
		if err != nil {
			return "", err
		}
		r.stream = &stream{Kind: "unix", Path: h.PipeSocket(s("Name")), Pipe: s("Name"), Timeout: t}
		return "", nil
	case "Connect-KitrunGuestPort":
		port, err := r.int(c, "Port")
		if err != nil {
			return "", err
		}
		t, err := r.int(c, "TimeoutSeconds")
		if err != nil {
			return "", err
		}
		v := h.get(s("VMName"))
		if v == nil {
			return "", scriptError{"Hyper-V was unable to find a virtual machine with name \"" + s("VMName") + "\"."}
		}
		addr, err := v.forward(port)
		if err != nil {
			return "", scriptError{err.Error()}
		}
		r.stream = &stream{Kind: "tcp", Addr: addr, Timeout: t}
		return "", nil
	case "Send-KitrunCtrlAltDel":
		v, err := h.mustGet(s("Name"))
		if err != nil {
			return "", err
		}
		if v.state() != "Running" {
			return jsonLine(map[string]any{"sent": false, "reason": "the VM is not running"}), nil
		}
		// Through QEMU's PS/2 keyboard, as Hyper-V's goes through its
		// synthetic one: the guest kernel sends init SIGINT.
		if err := v.qmp(`{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}}`); err != nil {
			return "", scriptError{err.Error()}
		}
		return jsonLine(map[string]any{"sent": true, "reason": "TypeCtrlAltDel returned 0"}), nil
	case "Remove-KitrunVM":
		removed := false
		if v := h.get(s("Name")); v != nil {
			if s("Destroyed") == "$true" {
				v.setNotes("kitrun: destroyed")
			}
			v.kill()
			h.remove(v)
			removed = true
		}
		dir := s("Directory")
		if dir == "" {
			dir = filepath.Join(h.Dir, "vms")
		}
		os.RemoveAll(filepath.Join(dir, s("Name")))
		return jsonLine(map[string]any{"removed": removed}), nil
	case "New-VM":
		if s("Generation") != "2" {
			return "", fmt.Errorf("New-VM: the fake makes generation 2 VMs only")
		}
		mem, err := r.int64(c, "MemoryStartupBytes")
		if err != nil {
			return "", err
		}
		if mem%(2<<20) != 0 {
			return "", scriptError{"Failed to modify device 'Memory': the memory size must be a multiple of 2 MB."}
		}
		return h.newVM(s("Name"), s("Path"), mem)
	case "Start-VM":
		v, err := h.mustGet(s("Name"))
		if err != nil {
			return "", err
		}
		return "", v.start()
	case "Stop-VM":
		v, err := h.mustGet(s("Name"))
		if err != nil {
			return "", err
		}
		if !c.params["TurnOff"].isSw || s("Confirm") != "$false" {
			return "", fmt.Errorf("Stop-VM: kitrun only turns VMs off (-TurnOff -Confirm:$false)")
		}
		v.kill()
		return "", nil
	case "Get-VMHardDiskDrive", "Get-VMDvdDrive":
		v, err := h.mustGet(s("VMName"))
		if err != nil {
			return "", err
		}
		return v.drive(c.name == "Get-VMDvdDrive")
	}
	// The rest configure a VM that is off.
	name := s("VMName")
	if name == "" {
		name = s("Name")
	}
	v, err := h.mustGet(name)
	if err != nil {
		return "", err
	}
	return "", v.configure(r, c)
}

func (r *run) int(c *command, k string) (int, error) {
	n, err := strconv.Atoi(c.params[k].s)
	if err != nil {
		return 0, fmt.Errorf("%s -%s: %q is not a number", c.name, k, c.params[k].s)
	}
	return n, nil
}

func (r *run) int64(c *command, k string) (int64, error) {
	n, err := strconv.ParseInt(c.params[k].s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s -%s: %q is not a number", c.name, k, c.params[k].s)
	}
	return n, nil
}

func jsonLine(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// PipeSocket is the unix socket that stands for the named pipe
// \\.\pipe\NAME: named by a digest, because unix socket paths are
// limited to 108 bytes and VM names are not short.
func (h *Host) PipeSocket(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(h.Dir, "p", hex.EncodeToString(sum[:8]))
}

func (h *Host) get(name string) *vm {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vms[name]
}

func (h *Host) mustGet(name string) (*vm, error) {
	if v := h.get(name); v != nil {
		return v, nil
	}
	return nil, scriptError{fmt.Sprintf("Hyper-V was unable to find a virtual machine with name %q.", name)}
}

func (h *Host) newVM(name, path string, mem int64) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.vms[name]; dup {
		return "", scriptError{fmt.Sprintf("a VM named %q exists already", name)}
	}
	if !strings.HasPrefix(name, "kitrun-") {
		return "", fmt.Errorf("New-VM: kitrun's VM names start with kitrun-, not %q", name)
	}
	dir := filepath.Join(path, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", scriptError{err.Error()}
	}
	v := &vm{h: h, dir: dir, st: vmState{Name: name, State: "Off", MemoryStartup: mem, ProcessorCount: 1,
		SecureBoot: true, Switch: ""}}
	h.vms[name] = v
	v.save()
	return "", nil
}

func (h *Host) remove(v *vm) {
	h.mu.Lock()
	delete(h.vms, v.st.Name)
	h.mu.Unlock()
	os.Remove(filepath.Join(h.Dir, "vms", v.st.Name+".json"))
}

// configure runs a Set-/Add-/Connect- command on a VM that is off.
func (v *vm) configure(r *run, c *command) error {
	v.mu.Lock()
	defer func() {
		v.mu.Unlock()
		v.save()
	}()
	if v.st.State != "Off" {
		return scriptError{c.name + ": the VM must be off"}
	}
	s := func(k string) string { return c.params[k].s }
	st := &v.st
	switch c.name {
	case "Set-VM":
		if n, ok := c.params["Notes"]; ok {
			st.Notes = n.s
		}
		st.CheckpointType = s("CheckpointType")
	case "Set-VMMemory":
		if d := s("DynamicMemoryEnabled"); d != "" && d != "$false" {
			return fmt.Errorf("Set-VMMemory: the fake has static memory only")
		}
		if _, ok := c.params["StartupBytes"]; ok {
			n, err := r.int64(c, "StartupBytes")
			if err != nil {
				return err
			}
			st.MemoryStartup = n
		}
	case "Set-VMProcessor":
		n, err := r.int(c, "Count")
		if err != nil {
			return err
		}
		st.ProcessorCount = n
	case "Add-VMDvdDrive":
		if _, err := os.Stat(s("Path")); err != nil {
			return scriptError{fmt.Sprintf("%s: %v", c.name, err)}
		}
		st.DVD = s("Path")
	case "Add-VMHardDiskDrive":
		return r.addDisk(c, st)
	case "Set-VMFirmware":
		switch s("EnableSecureBoot") {
		case "Off":
			st.SecureBoot = false
		case "On", "":
		default:
			return fmt.Errorf("Set-VMFirmware -EnableSecureBoot %s: On or Off", s("EnableSecureBoot"))
		}
		if d, ok := c.params["FirstBootDevice"]; ok {
			st.FirstBoot = d.s
		}
	case "Set-VMComPort":
		n, err := r.int(c, "Number")
		if err != nil {
			return err
		}
		name, ok := strings.CutPrefix(s("Path"), `\\.\pipe\`)
		if !ok || n < 1 || n > 2 {
			return scriptError{fmt.Sprintf("Set-VMComPort: COM%d %q: COM1 or COM2, on a \\\\.\\pipe\\ path", n, s("Path"))}
		}
		if n == 1 {
			st.COM1 = name
		} else {
			st.COM2 = name
		}
	case "Connect-VMNetworkAdapter":
		if !slices.Contains(v.h.Switches, s("SwitchName")) {
			return scriptError{fmt.Sprintf("Connect-VMNetworkAdapter: no switch %q", s("SwitchName"))}
		}
		st.Switch = s("SwitchName")
	}
	return nil
}

// addDisk is Add-VMHardDiskDrive on a generation 2 VM, checked as Hyper-V
// checks it: the controller is SCSI (generation 2 has no IDE), numbered
// 0 to 3, with locations 0 to 63; the file is a virtual hard disk (VHDX
// signature) not attached already. The first disk is the boot disk; the
// rest are Extra.
func (r *run) addDisk(c *command, st *vmState) error {
	path := c.params["Path"].s
	if t, ok := c.params["ControllerType"]; ok && !strings.EqualFold(t.s, "SCSI") {
		return scriptError{fmt.Sprintf("Add-VMHardDiskDrive: a generation 2 virtual machine has no %s controller; use -ControllerType SCSI", t.s)}
	}
	for k, max := range map[string]int{"ControllerNumber": 3, "ControllerLocation": 63} {
		if _, ok := c.params[k]; !ok {
			continue
		}
		n, err := r.int(c, k)
		if err != nil {
			return err
		}
		if n < 0 || n > max {
			return scriptError{fmt.Sprintf("Add-VMHardDiskDrive: -%s %d is out of range 0..%d", k, n, max)}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return scriptError{fmt.Sprintf("Add-VMHardDiskDrive: %v", err)}
	}
	sig := make([]byte, 8)
	_, err = io.ReadFull(f, sig)
	f.Close()
	if err != nil || string(sig) != "vhdxfile" {
		return scriptError{fmt.Sprintf("Add-VMHardDiskDrive: %q is not a virtual hard disk file (no VHDX signature)", path)}
	}
	if path == st.Disk || slices.Contains(st.Extra, path) {
		return scriptError{fmt.Sprintf("Add-VMHardDiskDrive: %q is already attached to the virtual machine", path)}
	}
	if st.Disk == "" {
		st.Disk = path
	} else {
		st.Extra = append(st.Extra, path)
	}
	return nil
}
