package qcow2_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
	"github.com/kitrun/kitrun/boot/disk/qcow2"
)

func TestQemuImgReadsWhatWasWritten(t *testing.T) {
	cases := rawtest.Cases()
	if !testing.Short() {
		cases = append(cases, rawtest.BigCase())
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := c.Make(t, dir)
			out := filepath.Join(dir, "disk.qcow2")
			rawtest.Write(t, raw, out, qcow2.Write)
			rawtest.Check(t, "qcow2", out)
			info := rawtest.ImageInfo(t, "qcow2", out)
			if info.VirtualSize != c.Size {
				t.Errorf("qemu-img info: virtual size %d, want %d", info.VirtualSize, c.Size)
			}
			rawtest.SameAsRaw(t, c, "qcow2", out, raw)

			// Zero clusters take no space: the file is the data clusters
			// plus a few clusters of metadata.
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			var data int64
			for _, e := range c.Extents {
				data += e.Len
			}
			if limit := 2*data + 2*rawtest.MiB; st.Size() > limit {
				t.Errorf("%s is %d bytes for %d bytes of data; zero clusters were stored?", out, st.Size(), data)
			}

			again := filepath.Join(dir, "again.qcow2")
			rawtest.Write(t, raw, again, qcow2.Write)
			rawtest.SameFile(t, out, again)
		})
	}
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
