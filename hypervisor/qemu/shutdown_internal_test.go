package qemu

import "testing"

// TestGuestShutdown: only a shutdown the guest caused is the guest's
// (halts_itself and reboots_itself rest on it).
func TestGuestShutdown(t *testing.T) {
	for reason, want := range map[string]string{
		"guest-shutdown": "poweroff", "guest-reset": "reset",
		"host-qmp-quit": "", "host-signal": "", "guest-panic": "",
	} {
		if got := guestShutdown(map[string]any{"guest": true, "reason": reason}); got != want {
			t.Errorf("reason %s: got %q, want %q", reason, got, want)
		}
	}
	if got := guestShutdown(nil); got != "" {
		t.Errorf("no data: got %q", got)
	}
}
