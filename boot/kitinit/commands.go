//go:build linux

package kitinit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// readCommands serves the host's commands, one per line, until the channel
// fails.
func (k *kitinit) readCommands(r io.Reader) {
	defer k.recoverGo("command reader")
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	long := false
	for {
		c, err := br.ReadByte()
		if err != nil {
			return
		}
		if c != '\n' && c != '\r' {
			// A reseed carries keys; anything longer is refused whole
			// rather than run cut.
			if len(line) < initproto.MaxCommandLine {
				line = append(line, c)
			} else {
				long = true
			}
			continue
		}
		cmd := strings.TrimSpace(string(line))
		line = line[:0]
		if long {
			long = false
			k.ev.errorf("command longer than %d bytes refused", initproto.MaxCommandLine)
			continue
		}
		if cmd != "" {
			k.command(cmd)
		}
	}
}

func (k *kitinit) command(cmd string) {
	if arg, ok := strings.CutPrefix(cmd, initproto.CmdReseed+" "); ok {
		k.reseed(arg)
		return
	}
	switch cmd {
	case initproto.CmdPoweroff:
		k.requestShutdown("poweroff requested by host", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case initproto.CmdReboot:
		k.requestShutdown("reboot requested by host", unix.LINUX_REBOOT_CMD_RESTART)
	case initproto.CmdMemory:
		k.ev.emit(initproto.Event{Kind: initproto.EvMemory, Data: k.memory()})
	default:
		k.ev.errorf("unknown command %q", cmd)
	}
}

// memory reports /proc/meminfo figures and each running service's RSS (its
// main process), plus kitinit's own, in bytes.
func (k *kitinit) memory() map[string]int64 {
	data := map[string]int64{}
	fields := map[string]string{"MemTotal": "mem_total", "MemAvailable": "mem_available", "MemFree": "mem_free"}
	procFields("/proc/meminfo", func(key string, v int64) {
		if name, ok := fields[key]; ok {
			data[name] = v
		}
	})
	rss := func(pid int, name string) {
		procFields("/proc/"+strconv.Itoa(pid)+"/status", func(key string, v int64) {
			if key == "VmRSS" {
				data["rss_"+name] = v
			}
		})
	}
	for name, pid := range k.running() {
		rss(pid, name)
	}
	rss(os.Getpid(), "kitinit")
	// The root filesystem is the unpacked initramfs, held in RAM.
	var st unix.Statfs_t
	if unix.Statfs("/", &st) == nil {
		data["rootfs_used"] = int64(st.Blocks-st.Bfree) * int64(st.Bsize) // Bsize is uint32 on s390x
	}
	return data
}

// procFields calls f for each "Key:   123 kB" line of a /proc file, with the
// value in bytes.
func procFields(path string, f func(key string, bytes int64)) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		parts := strings.Fields(rest)
		if len(parts) != 2 || parts[1] != "kB" {
			continue
		}
		if v, err := strconv.ParseInt(parts[0], 10, 64); err == nil {
			f(key, v*1024)
		}
	}
}

// reseed applies the fresh per-run state the host sends a VM restored from
// a snapshot, and says so: the host counts the VM ready only then. Every
// part is applied even if one fails, and a failure is an error event, not
// an acknowledgement, so that a restored VM never serves with the
// snapshot's keys or randomness.
func (k *kitinit) reseed(arg string) {
	r, err := initproto.ParseReseed(arg)
	if err != nil {
		k.ev.errorf("%v", err)
		return
	}
	if err := k.sys.Reseed(r); err != nil {
		k.ev.errorf("reseed: %v", err)
		return
	}
	// The host's view of a restored guest starts at the restore: say
	// again which services are ready (and running) now.
	for _, s := range k.services {
		if s.wasReady() && s.runningPid() != 0 {
			k.ev.emit(initproto.Event{Kind: initproto.EvServiceReady, Name: s.cfg.Name, Detail: "ready since before the snapshot, running"})
		}
	}
	k.ev.emit(initproto.Event{Kind: initproto.EvReseeded,
		Detail: fmt.Sprintf("clock set, %d bytes of entropy credited, CRNG reseeded, %d bytes of files", len(r.Entropy), len(r.Files)),
		Data:   map[string]int64{"entropy_bytes": int64(len(r.Entropy)), "files": int64(len(r.Files))}})
}
