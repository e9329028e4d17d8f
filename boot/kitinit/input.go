//go:build linux

package kitinit

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kitrun/kitrun/boot/initproto"
)

const (
	evKey    = 1   // EV_KEY
	keyPower = 116 // KEY_POWER
)

// inputEventSize is sizeof(struct input_event): a struct timeval, then u16
// type, u16 code, s32 value (24 bytes on 64-bit targets).
const inputEventSize = int(unsafe.Sizeof(unix.Timeval{})) + 8

// inputRescans are the delays, after the late modules are loaded, at which
// the input directory is scanned again for new event devices.
var inputRescans = []time.Duration{0, 250 * time.Millisecond, time.Second, 3 * time.Second}

// late loads the late modules, then watches the input devices for the power
// button. It runs once the boot has settled (all ready, or failed).
func (k *kitinit) late() {
	defer k.recoverGo("late modules")
	for _, m := range k.cfg.LateModules {
		if err := k.sys.LoadModule(m); err != nil {
			k.ev.errorf("late module %s: %v", m, err)
		}
	}
	for _, name := range k.lateMods {
		k.loadAvailable(name, initproto.ParamLateModules, 0)
	}
	if k.inputDir == "" {
		return
	}
	seen := map[string]bool{}
	for _, d := range inputRescans {
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-k.stopCh:
				t.Stop()
				return
			}
		}
		for _, name := range readDirNames(k.inputDir) {
			if strings.HasPrefix(name, "event") && !seen[name] {
				seen[name] = true
				go k.watchInput(filepath.Join(k.inputDir, name))
			}
		}
	}
}

// watchInput reads one event device and requests a poweroff on a KEY_POWER
// press.
func (k *kitinit) watchInput(path string) {
	defer k.recoverGo("input " + path)
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 64*inputEventSize)
	have := 0
	for {
		n, err := f.Read(buf[have:])
		have += n
		i := 0
		for ; have-i >= inputEventSize; i += inputEventSize {
			ev := buf[i+inputEventSize-8 : i+inputEventSize]
			typ := binary.NativeEndian.Uint16(ev[0:])
			code := binary.NativeEndian.Uint16(ev[2:])
			value := int32(binary.NativeEndian.Uint32(ev[4:]))
			if typ == evKey && code == keyPower && value == 1 {
				k.requestShutdown("power button", unix.LINUX_REBOOT_CMD_POWER_OFF)
			}
		}
		have = copy(buf, buf[i:have])
		if err != nil {
			return
		}
	}
}
