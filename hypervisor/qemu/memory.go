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
// (/proc/PID/smaps_rollup), and the resident part of the guest's RAM, the
// anonymous mapping of exactly the guest's memory size in /proc/PID/smaps.
// The overhead is PSS minus that: what QEMU itself costs beyond the guest
// memory it backs (under TCG, mostly the translation cache).
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
	guest, err := guestRAMResident(pid, int64(memMiB)<<20)
	if err != nil {
		return hm, err
	}
	hm.GuestResident = guest
	hm.Overhead = hm.PSS - guest
	return hm, nil
}

// guestRAMResident finds the guest RAM mapping in /proc/PID/smaps and
// returns its resident bytes.
func guestRAMResident(pid int, size int64) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inGuest := false
	for sc.Scan() {
		line := sc.Text()
		key, rest, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(key, " ") || strings.Contains(key, "-") {
			inGuest = false // a mapping header line
			continue
		}
		v, ok := kbValue(rest)
		if !ok {
			continue
		}
		switch key {
		case "Size":
			inGuest = v == size
		case "Rss":
			if inGuest {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("qemu pid %d: no %d MiB guest RAM mapping in smaps", pid, size>>20)
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
