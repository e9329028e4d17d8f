package cloudfake

import (
	"os"
	"sync"
)

// Boot brings up a machine the fake's platform has accepted: with QEMU
// (qemu true) start boots it; without, it is a placeholder whose console
// file holds one line, placeholder (what the control-plane tests read).
// mu is the fake's lock, held while running marks the machine running
// (if it still is starting: it may have been stopped meanwhile); a
// failed start goes to exited.
func Boot(mu *sync.Mutex, qemu bool, console, placeholder string, start func() error, running func(), exited func(error)) {
	var err error
	if qemu {
		err = start()
	} else {
		os.WriteFile(console, []byte(placeholder+"\r\n"), 0o644)
	}
	mu.Lock()
	if err == nil {
		running()
	}
	mu.Unlock()
	if err != nil {
		exited(err)
	}
}

// MarkExited closes a machine's exited channel and says whether this call
// did: a machine's end is recorded once, by whichever caller comes first
// (QEMU's exit, a kill, a failed start). The caller holds the fake's lock.
func MarkExited(exited chan struct{}) bool {
	select {
	case <-exited:
		return false
	default:
		close(exited)
		return true
	}
}
