// Command kitrun assembles minimal Linux images from YAML specs, boots them
// on QEMU, measures them and tests them. See README.md.
package main

import (
	"os"

	"github.com/kitrun/kitrun/cmd/kitrun/internal/root"
)

func main() {
	os.Exit(root.Main(os.Args[1:], os.Stdout, os.Stderr))
}
