//go:build !linux

package entropy

import "errors"

var errNotLinux = errors.New("feeding the kernel's entropy pool needs a Linux guest")

// Credit: see entropy_linux.go.
func Credit(seed []byte) error {
	if len(seed) == 0 {
		return nil
	}
	return errNotLinux
}

// Reseed: see entropy_linux.go.
func Reseed() error { return errNotLinux }
