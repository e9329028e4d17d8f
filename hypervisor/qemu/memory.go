package qemu

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kitrun/kitrun/hypervisor"
)

// hostMemory measures the QEMU process: its RSS and PSS
// (/proc/PID/smaps_rollup), and from /proc/PID/smaps the resident part of
// the guest's RAM (the anonymous mapping of exactly the guest's memory
// size), of TCG's translation buffer (QEMU's one anonymous executable
// mapping) and of file mappings. The overhead is PSS minus the guest's
// RAM: what QEMU itself costs beyond the guest memory it backs.
func hostMemory(pid, memMiB int) (hypervisor.HostMemory, error) {
	var hm hypervisor.HostMemory
	err := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), func(k string, v int64) {
		switch k {
		case "Rss":
			hm.RSS = v
		case "Pss":
			hm.PSS = v
		}
	})
	if err != nil {
		return hm, fmt.Errorf("qemu memory: %w", err)
	}
	parts, err := smapsParts(pid, int64(memMiB)<<20)
	if err != nil {
		return hm, err
	}
	hm.GuestResident = parts.guest
	hm.CodeCache = parts.code
	hm.Files = parts.files
	hm.Overhead = hm.PSS - parts.guest
	return hm, nil
}

// residentParts are resident bytes of kinds of QEMU's mappings.
type residentParts struct {
	guest, code, files int64
}

// smapsParts reads /proc/PID/smaps. The guest's RAM is the first anonymous
// mapping of exactly its size; it is an error when there is none.
func smapsParts(pid int, guestSize int64) (residentParts, error) {
	var p residentParts
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return p, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var perms, path string
	var size int64
	guestFound := false
	for sc.Scan() {
		line := sc.Text()
		key, rest, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(key, " ") || strings.Contains(key, "-") {
			// A mapping header: ADDR-ADDR PERMS OFFSET DEV INODE [PATH].
			fs := strings.Fields(line)
			perms, path, size = "", "", 0
			if len(fs) >= 5 {
				perms = fs[1]
				if len(fs) >= 6 {
					path = strings.Join(fs[5:], " ")
				}
			}
			continue
		}
		v, ok := kbValue(rest)
		if !ok {
			continue
		}
		switch key {
		case "Size":
			size = v
		case "Rss":
			switch {
			case path == "" && size == guestSize && !guestFound:
				p.guest, guestFound = v, true
			case path == "" && strings.Contains(perms, "x"):
				p.code += v
			case strings.HasPrefix(path, "/"):
				p.files += v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return p, err
	}
	if !guestFound {
		return p, fmt.Errorf("qemu pid %d: no %d MiB guest RAM mapping in smaps", pid, guestSize>>20)
	}
	return p, nil
}

// guestRAMResident returns the resident bytes of the guest's RAM mapping.
func guestRAMResident(pid int, size int64) (int64, error) {
	p, err := smapsParts(pid, size)
	return p.guest, err
}

// procKB calls f for each "Key:  123 kB" line of a /proc file, in bytes.
func procKB(path string, f func(key string, bytes int64)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if v, ok := kbValue(rest); ok {
			f(strings.TrimSpace(key), v)
		}
	}
	return nil
}

func kbValue(s string) (int64, bool) {
	parts := strings.Fields(s)
	if len(parts) != 2 || parts[1] != "kB" {
		return 0, false
	}
	v, err := strconv.ParseInt(parts[0], 10, 64)
	return v * 1024, err == nil
}
