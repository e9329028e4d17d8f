//go:build linux

package hypervfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kitrun/kitrun/hypervisor/cloud/cloudfake"
)

// vmState is what the host keeps of a VM (vms/NAME.json).
type vmState struct {
	Name           string    `json:"name"`
	State          string    `json:"state"` // Off | Running
	PID            int       `json:"pid,omitempty"`
	MemoryStartup  int64     `json:"memoryStartup"`
	ProcessorCount int       `json:"processorCount"`
	Notes          string    `json:"notes"`
	CheckpointType string    `json:"checkpointType,omitempty"`
	Disk           string    `json:"disk,omitempty"`
	Extra          []string  `json:"extra,omitempty"` // hard disks after the first
	DVD            string    `json:"dvd,omitempty"`
	SecureBoot     bool      `json:"secureBoot"`
	FirstBoot      string    `json:"firstBoot,omitempty"`
	COM1           string    `json:"com1,omitempty"`
	COM2           string    `json:"com2,omitempty"`
	Switch         string    `json:"switch,omitempty"`
	Started        time.Time `json:"started,omitempty"`
}

type vm struct {
	h   *Host
	dir string

	mu       sync.Mutex
	st       vmState
	qemu     *cloudfake.QEMU
	exited   chan struct{}
	forwards map[int]int // guest port → host port
}

func (v *vm) save() {
	v.mu.Lock()
	b, _ := json.MarshalIndent(v.st, "", "  ")
	v.mu.Unlock()
	os.WriteFile(filepath.Join(v.h.Dir, "vms", v.st.Name+".json"), b, 0o600)
}

func (v *vm) state() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.st.State
}

func (v *vm) setNotes(n string) {
	v.mu.Lock()
	v.st.Notes = n
	v.mu.Unlock()
	v.save()
}

// status is Write-KitrunVM's answer.
func (v *vm) status() map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	assigned, uptime := int64(0), 0.0
	if st.State == "Running" {
		assigned, uptime = st.MemoryStartup, time.Since(st.Started).Seconds()
	}
	return map[string]any{"found": true, "name": st.Name, "id": "00000000-0000-0000-0000-" + fmt.Sprintf("%012d", len(st.Name)),
		"state": st.State, "memoryAssigned": assigned, "memoryDemand": assigned, "memoryStartup": st.MemoryStartup,
		"processorCount": st.ProcessorCount, "uptimeSeconds": uptime, "notes": st.Notes}
}

// drive is Get-VMHardDiskDrive's or Get-VMDvdDrive's result, as a value
// for -FirstBootDevice.
func (v *vm) drive(dvd bool) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if dvd && v.st.DVD != "" {
		return "dvd:" + v.st.DVD, nil
	}
	if !dvd && len(v.st.Extra) > 0 {
		// Get-VMHardDiskDrive returns every disk, which -FirstBootDevice
		// (one device) does not take.
		return "", scriptError{"Set-VMFirmware: cannot convert 'System.Object[]' to the type 'VMComponentObject' required by parameter 'FirstBootDevice'"}
	}
	if !dvd && v.st.Disk != "" {
		return "disk:" + v.st.Disk, nil
	}
	return "", nil
}

// start is Start-VM: QEMU as a generation 2 VM.
func (v *vm) start() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := &v.st
	if st.State != "Off" {
		return scriptError{"Start-VM: the VM is " + st.State}
	}
	if st.SecureBoot {
		// kitrun's unified kernel image is not signed: Hyper-V's firmware
		// would refuse it, and so does the fake.
		return scriptError{"Start-VM: Secure Boot is on: the boot loader is unsigned (Set-VMFirmware -EnableSecureBoot Off)"}
	}
	boot, dvd := st.Disk, false
	switch {
	case st.FirstBoot == "dvd:"+st.DVD && st.DVD != "":
		boot, dvd = st.DVD, true
	case st.FirstBoot == "disk:"+st.Disk && st.Disk != "":
	default:
		return scriptError{fmt.Sprintf("Start-VM: the first boot device %q is not an attached drive (Set-VMFirmware -FirstBootDevice)", st.FirstBoot)}
	}
	if st.COM1 == "" {
		return errors.New("Start-VM: kitrun always wires COM1")
	}
	// Generation 2: q35 with OVMF (see cloudfake), the boot drive on
	// virtio-scsi.
	args := []string{"-device", "virtio-scsi-pci,id=scsi0"}
	if dvd {
		args = append(args, "-drive", "file="+boot+",format=raw,if=none,id=boot,media=cdrom,readonly=on",
			"-device", "scsi-cd,drive=boot,bus=scsi0.0,bootindex=0")
	} else {
		args = append(args, "-drive", "file="+boot+",format=vhdx,if=none,id=boot",
			"-device", "scsi-hd,drive=boot,bus=scsi0.0,bootindex=0")
	}
	// Further hard disks (kitrun's seed disk) as read-only virtio-blk
	// drives, which the gen2-qemu machine's guest reads with virtio_blk.
	for i, d := range st.Extra {
		id := fmt.Sprintf("disk%d", i+1)
		args = append(args, "-drive", "file="+d+",format=vhdx,if=none,id="+id+",readonly=on",
			"-device", "virtio-blk-pci,drive="+id)
	}
	for i, pipe := range []string{st.COM1, st.COM2} {
		if pipe == "" {
			continue
		}
		sock := v.h.PipeSocket(pipe)
		os.Remove(sock)
		id := fmt.Sprintf("com%d", i+1)
		args = append(args, "-chardev", "socket,id="+id+",path="+sock+",server=on,wait=off", "-serial", "chardev:"+id)
	}
	var nw *cloudfake.Net
	if st.Switch != "" {
		nw = &cloudfake.Net{ID: "net0"}
	}
	log, err := os.Create(filepath.Join(v.dir, "qemu.log"))
	if err != nil {
		return scriptError{err.Error()}
	}
	exited := make(chan struct{})
	v.h.wg.Add(1)
	q, err := cloudfake.Start(cloudfake.Spec{Name: "hypervfake: " + st.Name, Dir: v.dir,
		MemoryMiB: st.MemoryStartup >> 20, CPUs: st.ProcessorCount, Args: args, Net: nw, Output: log,
	}, func(error) {
		defer v.h.wg.Done()
		v.mu.Lock()
		v.st.State, v.st.PID, v.qemu = "Off", 0, nil
		for _, p := range []string{v.st.COM1, v.st.COM2} {
			if p != "" {
				os.Remove(v.h.PipeSocket(p))
			}
		}
		v.mu.Unlock()
		v.save()
		close(exited)
	})
	log.Close()
	if err != nil {
		v.h.wg.Done()
		return scriptError{"Start-VM: " + err.Error()}
	}
	v.qemu, v.exited, v.forwards = q, exited, map[int]int{}
	st.State, st.PID, st.Started = "Running", q.PID(), time.Now()
	// Like Hyper-V's, the pipes exist once Start-VM returns.
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range []string{st.COM1, st.COM2} {
		for p != "" {
			if _, err := os.Stat(v.h.PipeSocket(p)); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	go v.save()
	return nil
}

// kill turns the VM off: SIGKILL to QEMU, and waits until it is reaped.
func (v *vm) kill() {
	v.mu.Lock()
	q := v.qemu
	v.mu.Unlock()
	if q != nil {
		q.Kill()
	}
}

// qmp runs one QMP command.
func (v *vm) qmp(cmd string) error {
	_, err := v.qmpResult(cmd)
	return err
}

func (v *vm) qmpResult(cmd string) (json.RawMessage, error) {
	v.mu.Lock()
	q := v.qemu
	v.mu.Unlock()
	if q == nil {
		return nil, errors.New("QMP: the VM is off")
	}
	return q.Command(cmd)
}

// forward is where the host reaches a guest port: a QEMU host forward,
// added on first use. The real host relays to the guest's address on the
// switch instead; QEMU's user network has none the host can reach.
func (v *vm) forward(port int) (string, error) {
	v.mu.Lock()
	running, sw := v.st.State == "Running", v.st.Switch
	hp, ok := v.forwards[port]
	v.mu.Unlock()
	if !running || sw == "" {
		return "", fmt.Errorf("the VM does not run on a switch")
	}
	if ok {
		return "127.0.0.1:" + strconv.Itoa(hp), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	hp = l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := fmt.Sprintf(`{"execute":"human-monitor-command","arguments":{"command-line":"hostfwd_add net0 tcp:127.0.0.1:%d-:%d"}}`, hp, port)
	out, err := v.qmpResult(cmd)
	if err != nil {
		return "", err
	}
	if s := string(out); s != `""` && s != "" {
		return "", fmt.Errorf("hostfwd_add: %s", s)
	}
	v.mu.Lock()
	v.forwards[port] = hp
	v.mu.Unlock()
	return "127.0.0.1:" + strconv.Itoa(hp), nil
}
