//go:build linux

// Package hypervfake is a fake Windows host with Hyper-V, for tests on
// machines without Windows: a PowerShell (the test binary re-executed, see
// MaybeRunPwsh) whose invocations are run by a Host in the test process.
// The Host runs the scripts the hyperv package generates — the cmdlets of
// its templates, and the prelude's functions implemented natively — keeps
// each VM's state (also written as JSON into its state directory, for
// inspection), records every invocation, and makes each started VM a
// QEMU machine: q35 with OVMF, the uploaded vhdx on virtio-scsi (or the
// iso as a SCSI DVD), COM1 and COM2 as unix sockets the relay command
// connects to (Hyper-V's named pipes), user networking on a virtio NIC
// when the adapter is connected, and QMP for Stop-VM's power button and
// port forwards.
//
// The QEMU machines are children of the test process, started with a
// parent-death signal from an OS thread kept until they are reaped: they
// cannot outlive the test, and Close (registered with t.Cleanup) kills
// those still running.
package hypervfake

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/hypervisor/hyperv"
)

// Host is a fake Windows host.
type Host struct {
	// Dir is the state directory: vms/NAME.json, the VMs' files, the
	// pipes' sockets, the calls log.
	Dir string
	// Pwsh is the PowerShell program to give the backend (pwsh=PATH).
	Pwsh string
	// Switches are the host's virtual switches.
	Switches []string
	// QEMU is the QEMU binary (default qemu-system-x86_64).
	QEMU string

	l net.Listener

	mu    sync.Mutex
	vms   map[string]*vm
	calls []Call
	wg    sync.WaitGroup
}

// Call is one PowerShell invocation: the commands its script ran, in
// order, and how it ended.
type Call struct {
	Commands []string
	Exit     int
}

// Start starts a fake host for the test; it is closed when the test ends.
// The test binary's TestMain must call MaybeRunPwsh.
func Start(t testing.TB) *Host {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// New starts a fake host; Close ends it.
func New() (*Host, error) {
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "khv")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"vms", "p"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	h := &Host{
		Dir: dir, Pwsh: filepath.Join(dir, "pwsh"), Switches: []string{hyperv.DefaultSwitch},
		QEMU: "qemu-system-x86_64", l: l, vms: map[string]*vm{},
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", EnvSocket, shellQuote(sock), shellQuote(exe))
	if err := os.WriteFile(h.Pwsh, []byte(wrapper), 0o755); err != nil {
		l.Close()
		return nil, err
	}
	go h.serve()
	return h, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Options are the backend options that point kitrun's hyperv backend at
// this host.
func (h *Host) Options() map[string]string {
	return map[string]string{"pwsh": h.Pwsh, "hardware": "qemu"}
}

// BackendOpts are Options as --backend-opt flags.
func (h *Host) BackendOpts() []string {
	return []string{"--backend-opt", "pwsh=" + h.Pwsh, "--backend-opt", "hardware=qemu"}
}

// Close kills every VM still running and removes the state directory.
func (h *Host) Close() {
	h.l.Close()
	h.mu.Lock()
	vms := make([]*vm, 0, len(h.vms))
	for _, v := range h.vms {
		vms = append(vms, v)
	}
	h.mu.Unlock()
	for _, v := range vms {
		v.kill()
	}
	h.wg.Wait()
	os.RemoveAll(h.Dir)
}

// Calls returns the invocations so far.
func (h *Host) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Call(nil), h.calls...)
}

// Running lists the VMs that run.
func (h *Host) Running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n, v := range h.vms {
		if v.state() == "Running" {
			out = append(out, n)
		}
	}
	return out
}

// VMs lists every VM the host has (running or off, not removed).
func (h *Host) VMs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n := range h.vms {
		out = append(out, n)
	}
	return out
}

func (h *Host) serve() {
	for {
		c, err := h.l.Accept()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer c.Close()
			var req request
			if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
				return
			}
			resp := h.run(req)
			json.NewEncoder(c).Encode(resp)
		}()
	}
}

// run interprets one script.
func (h *Host) run(req request) response {
	r := &run{h: h, step: "start"}
	resp := r.script(req.Script)
	h.mu.Lock()
	h.calls = append(h.calls, Call{Commands: r.commands, Exit: resp.Exit})
	h.mu.Unlock()
	h.log(r.commands, resp.Exit)
	return resp
}

func (h *Host) log(cmds []string, exit int) {
	f, err := os.OpenFile(filepath.Join(h.Dir, "calls.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s exit %d: %s\n", time.Now().Format(time.RFC3339Nano), exit, strings.Join(cmds, "; "))
}

// run is one invocation's interpretation.
type run struct {
	h        *Host
	step     string
	out      strings.Builder
	commands []string
	stream   *stream
}

// scriptError is a terminating error: the trap's JSON, exit 1.
type scriptError struct{ msg string }

func (e scriptError) Error() string { return e.msg }

func (r *run) script(script string) response {
	begin := strings.Index(script, hyperv.PreludeBegin)
	end := strings.Index(script, hyperv.PreludeEnd)
	if begin != 0 || end < 0 {
		return response{Stderr: "fake pwsh: the script does not start with kitrun's prelude\n", Exit: 1}
	}
	body := script[end+len(hyperv.PreludeEnd):]
	for i, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		step, pipeline, err := parseLine(line)
		if err != nil {
			return response{Stderr: fmt.Sprintf("fake pwsh: line %d %q: %v\n", i+1, line, err), Exit: 1}
		}
		if step != nil {
			r.step = *step
			continue
		}
		if err := r.pipeline(pipeline); err != nil {
			if se, ok := err.(scriptError); ok {
				r.out.WriteString(errorJSON(r.step, se.msg) + "\n")
				return response{Stdout: r.out.String(), Exit: 1}
			}
			return response{Stdout: r.out.String(), Stderr: fmt.Sprintf("fake pwsh: line %d %q: %v\n", i+1, line, err), Exit: 1}
		}
		if r.stream != nil {
			break
		}
	}
	return response{Stdout: r.out.String(), Stream: r.stream}
}

func (r *run) pipeline(p []*command) error {
	for i, c := range p[1:] {
		if c.name != "Out-Null" || len(c.params) > 0 || i != len(p)-2 {
			return fmt.Errorf("only `| Out-Null` ends a pipeline here, not %s", c.name)
		}
	}
	out, err := r.command(p[0])
	if err != nil {
		return err
	}
	if len(p) == 1 && out != "" {
		r.out.WriteString(out + "\n")
	}
	return nil
}
