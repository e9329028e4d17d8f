package qemu

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// hostRelease is Windows's version and build: a probe's answer holds for
// it.
func hostRelease() (string, error) {
	v := windows.RtlGetVersion()
	return fmt.Sprintf("%d.%d.%d", v.MajorVersion, v.MinorVersion, v.BuildNumber), nil
}
