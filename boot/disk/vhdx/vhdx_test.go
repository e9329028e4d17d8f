package vhdx_test

import (
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
	"github.com/kitrun/kitrun/boot/disk/vhdx"
)

func TestQemuImgReadsWhatWasWritten(t *testing.T) {
	rawtest.RoundTrip(t, rawtest.Readers{Qemu: "vhdx", Check: true, Libyal: "vhdx"}, vhdx.Write)
}
