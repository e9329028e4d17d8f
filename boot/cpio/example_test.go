package cpio_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/kitrun/kitrun/boot/cpio"
)

func ExampleWriteTree() {
	var buf bytes.Buffer
	err := cpio.WriteTree(&buf, []cpio.Record{
		cpio.File("/etc/motd", []byte("hello\n"), 0644),
		cpio.Symlink("bin/sh", "busybox"),
		cpio.CharDev("dev/console", 0600, 5, 1),
	})
	if err != nil {
		panic(err)
	}
	r := cpio.NewReader(&buf)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%06o %s\n", rec.Mode, rec.Name)
	}
	// Output:
	// 040755 bin
	// 120777 bin/sh
	// 040755 dev
	// 020600 dev/console
	// 040755 etc
	// 100644 etc/motd
}
