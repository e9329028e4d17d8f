package disk

import (
	"testing"

	"github.com/kitrun/kitrun/boot/image"
)

// Every format's output is a file kitrun may replace in an image directory.
func TestFormatsRegisterTheirFiles(t *testing.T) {
	for _, n := range Names() {
		f, _ := Lookup(n)
		if !image.IsFile(f.File) {
			t.Errorf("format %s: %s is not among image.Files() %v", n, f.File, image.Files())
		}
	}
}
