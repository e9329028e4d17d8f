package qemu

import (
	"errors"
	"os"
)

// socketpair: Windows streams are TCP (tcpStreams).
func socketpair(what string) (host, guest *os.File, err error) {
	return nil, nil, errors.New(what + ": no socketpairs on Windows")
}
