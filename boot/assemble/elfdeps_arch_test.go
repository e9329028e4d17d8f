package assemble

import (
	"os"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/arch"
)

// TestHostBinaryOfAnotherArch: a binary: entry built for the host is taken
// for the host's arch and refused, by name, for every other arch in the
// table.
func TestHostBinaryOfAnotherArch(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := arch.Host()
	for _, a := range arch.All() {
		_, err := inspectBinary(self, a)
		switch {
		case a.Name == host.Name && err != nil:
			t.Errorf("%s: the host's own binary refused: %v", a.Name, err)
		case a.Name != host.Name && (err == nil || !strings.Contains(err.Error(), "not "+a.Name)):
			t.Errorf("%s: a %s binary: got %v, want an error naming %s", a.Name, host.Name, err, a.Name)
		}
	}
}
