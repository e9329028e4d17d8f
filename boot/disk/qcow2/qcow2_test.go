package qcow2_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
	"github.com/kitrun/kitrun/boot/disk/qcow2"
)

func TestQemuImgReadsWhatWasWritten(t *testing.T) {
	rawtest.RoundTrip(t, rawtest.Readers{Qemu: "qcow2", Check: true}, qcow2.Write)
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		size int64
		want string
	}{
		{"empty", nil, 0, "empty"},
		{"not whole sectors", make([]byte, 1000), 1000, "whole number of 512-byte sectors"},
		{"shorter than stated", make([]byte, 512), 4096, "shorter than its stated size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := qcow2.Write(context.Background(), &out, bytes.NewReader(tc.data), tc.size)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
