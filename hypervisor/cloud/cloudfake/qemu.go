// Package cloudfake is what kitrun's fake clouds (awsfake, gcpfake,
// azurefake, hypervfake) share: the QEMU machine that stands in for a
// cloud's VM — q35 with OVMF under TCG, the serial console in a file or
// socket, user networking with the machine's published ports forwarded
// from its fake address —, the QMP calls that press its power button, and
// the bring-up of a machine the platform accepted (QEMU, or a placeholder
// without it) with its end recorded once.
// It is test code: only the fakes and tests import it.
package cloudfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kitrun/kitrun/internal/childproc"
)

// OVMF is the firmware the fakes boot disks with (Debian's ovmf).
var (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Spec is one machine.
type Spec struct {
	// Name is the machine's name in the fake's log.
	Name string
	// Dir is the machine's own directory: its UEFI variables and QMP
	// socket go there.
	Dir string
	// MemoryMiB and CPUs size the machine (default 512 MiB, 1).
	MemoryMiB int64
	CPUs      int
	// Console is the file the first serial port writes to; empty when
	// Args wires the serial ports.
	Console string
	// Args attach the boot disk (and whatever else the platform has).
	Args []string
	// Net gives the machine a NIC on QEMU's user network; nil: none.
	Net *Net
	// Output receives QEMU's own stdout and stderr; nil: they are kept
	// and added to the exit error.
	Output io.Writer
	// Log is the fake's log.
	Log func(format string, args ...any)
}

// Net is a machine's user-mode network.
type Net struct {
	// ID names the netdev (default n0): hostfwd_add takes it.
	ID string
	// Addr is the host address the published ports are forwarded from
	// (the machine's fake address, on loopback).
	Addr string
	// Forwards are the guest ports reached at Addr, on the same port.
	Forwards []int
	// Metadata, if set, is the instance metadata service the guest
	// reaches at 169.254.169.254:80, as on the clouds. The fake serves
	// it on a loopback port of its own, and QEMU's user network forwards
	// each guest connection there (guestfwd, which wants its address
	// inside the virtual network: the guest's network is then the
	// link-local 169.254.0.0/16, its address 169.254.0.15).
	Metadata http.Handler
}

// metadataAddr is where the clouds serve instance metadata.
const metadataAddr = "169.254.169.254:80"

// QEMU is a running machine.
type QEMU struct {
	cmd     *exec.Cmd
	qmp     string
	done    chan struct{}
	closers []func() error // what goes with the machine
}

func (q *QEMU) close() {
	for _, c := range q.closers {
		c()
	}
}

// Start boots the machine; exited is called once when QEMU exits, with
// why it failed (nil: the guest powered off).
func Start(s Spec, exited func(error)) (*QEMU, error) {
	vars, err := os.ReadFile(OVMFVars)
	if err != nil {
		return nil, fmt.Errorf("OVMF variables (install Debian's ovmf): %w", err)
	}
	varsPath := filepath.Join(s.Dir, "efivars.fd")
	if err := os.WriteFile(varsPath, vars, 0o600); err != nil {
		return nil, err
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = 512
	}
	if s.CPUs == 0 {
		s.CPUs = 1
	}
	q := &QEMU{qmp: filepath.Join(s.Dir, "qmp.sock"), done: make(chan struct{})}
	args := []string{
		"-M", "q35", "-accel", "tcg", "-cpu", "qemu64",
		"-m", fmt.Sprintf("%dM", s.MemoryMiB), "-smp", fmt.Sprint(s.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + varsPath,
		"-qmp", "unix:" + q.qmp + ",server=on,wait=off",
	}
	args = append(args, s.Args...)
	if s.Console != "" {
		args = append(args, "-chardev", "file,id=con,path="+s.Console, "-serial", "chardev:con")
	}
	if n := s.Net; n != nil {
		id := n.ID
		if id == "" {
			id = "n0"
		}
		netdev := "user,id=" + id
		if n.Metadata != nil {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("the metadata service: %w", err)
			}
			srv := &http.Server{Handler: n.Metadata, ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(l)
			q.closers = append(q.closers, srv.Close)
			// guestfwd's cmd: runs a program per guest connection with
			// the connection on its stdin and stdout (parsed like a
			// shell's words, no shell); bash relays it to the server.
			relay := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; cat <&3 & cat >&3; wait", l.Addr().(*net.TCPAddr).Port)
			netdev += ",net=169.254.0.0/16,guestfwd=tcp:" + metadataAddr + "-cmd:bash -c '" + relay + "'"
		}
		for _, p := range n.Forwards {
			netdev += fmt.Sprintf(",hostfwd=tcp:%s:%d-:%d", n.Addr, p, p)
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev="+id)
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var out bytes.Buffer
	if s.Output != nil {
		cmd.Stdout, cmd.Stderr = s.Output, s.Output
	} else {
		cmd.Stderr = &out
	}
	if s.Log != nil {
		s.Log("%s: qemu-system-x86_64 %s", s.Name, strings.Join(args, " "))
	}
	waited, err := childproc.Start(cmd)
	if err != nil {
		q.close()
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	q.cmd = cmd
	go func() {
		err := <-waited
		if err != nil && out.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(out.String()))
		}
		q.close()
		if exited != nil {
			exited(err)
		}
		close(q.done)
	}()
	return q, nil
}

// PID is QEMU's process ID.
func (q *QEMU) PID() int { return q.cmd.Process.Pid }

// Done is closed once QEMU has exited and Start's exited has returned.
func (q *QEMU) Done() <-chan struct{} { return q.done }

// Kill pulls the plug (QEMU and anything it started) and waits (at most
// 10 s) until QEMU is reaped and its exit reported.
func (q *QEMU) Kill() {
	childproc.Kill(q.cmd)
	select {
	case <-q.done:
	case <-time.After(10 * time.Second):
	}
}

// Powerdown presses the ACPI power button.
func (q *QEMU) Powerdown() error {
	_, err := q.Command(`{"execute":"system_powerdown"}`)
	return err
}

// Command runs one QMP command (a JSON object) and returns its result.
func (q *QEMU) Command(command string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", q.qmp)
	if err != nil {
		return nil, fmt.Errorf("QMP: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(c)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	for _, line := range []string{`{"execute":"qmp_capabilities"}`, command} {
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			return nil, err
		}
		for {
			var reply struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Desc string `json:"desc"`
				} `json:"error"`
			}
			if err := dec.Decode(&reply); err != nil {
				return nil, fmt.Errorf("QMP %s: %w", line, err)
			}
			if reply.Error != nil {
				return nil, fmt.Errorf("QMP %s: %s", line, reply.Error.Desc)
			}
			if reply.Return != nil {
				if line == command {
					return reply.Return, nil
				}
				break
			}
		}
	}
	return nil, nil
}
