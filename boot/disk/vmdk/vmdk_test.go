package vmdk_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawtest"
	"github.com/kitrun/kitrun/boot/disk/vmdk"
)

func write(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) error {
	return vmdk.Write(ctx, w, src, size, vmdk.Options{FileName: "disk.vmdk"})
}

func TestQemuImgReadsWhatWasWritten(t *testing.T) {
	rawtest.RoundTrip(t, rawtest.Readers{Qemu: "vmdk", Check: true, Libyal: "vmdk"}, write)
}

// TestQemuImgSeesAStreamOptimizedDisk checks what qemu-img makes of the
// header and the embedded descriptor.
func TestQemuImgSeesAStreamOptimizedDisk(t *testing.T) {
	dir := t.TempDir()
	c := rawtest.Cases()[3]
	raw := c.Make(t, dir)
	out := filepath.Join(dir, "disk.vmdk")
	rawtest.Write(t, raw, out, write)
	var info struct {
		Specific struct {
			Type string `json:"type"`
			Data struct {
				CreateType string `json:"create-type"`
				CID        uint32 `json:"cid"`
				ParentCID  uint32 `json:"parent-cid"`
				Extents    []struct {
					Compressed  bool   `json:"compressed"`
					Format      string `json:"format"`
					ClusterSize int64  `json:"cluster-size"`
					VirtualSize int64  `json:"virtual-size"`
				} `json:"extents"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	js := rawtest.QemuImg(t, "info", "-f", "vmdk", "--output=json", out)
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatal(err)
	}
	d := info.Specific.Data
	if d.CreateType != "streamOptimized" || d.ParentCID != 0xffffffff || len(d.Extents) != 1 {
		t.Fatalf("qemu-img info: %s", js)
	}
	e := d.Extents[0]
	if !e.Compressed || e.ClusterSize != 64<<10 || e.VirtualSize != c.Size {
		t.Fatalf("qemu-img info: extent %+v", e)
	}
	// A different content, a different content ID.
	if err := os.WriteFile(raw, make([]byte, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.vmdk")
	rawtest.Write(t, raw, other, write)
	js2 := rawtest.QemuImg(t, "info", "-f", "vmdk", "--output=json", other)
	if err := json.Unmarshal([]byte(js2), &info); err != nil {
		t.Fatal(err)
	}
	if info.Specific.Data.CID == d.CID {
		t.Errorf("two contents share the content ID %08x", d.CID)
	}
}

func TestBadOptions(t *testing.T) {
	raw := strings.NewReader(strings.Repeat("x", 1024))
	for _, tc := range []struct {
		opts vmdk.Options
		want string
	}{
		{vmdk.Options{FileName: "../disk.vmdk"}, "plain file name"},
		{vmdk.Options{FileName: "a\"b.vmdk"}, "plain file name"},
		{vmdk.Options{AdapterType: "nvme"}, "valid: ide, lsilogic"},
	} {
		err := vmdk.Write(context.Background(), io.Discard, raw, 1024, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.opts, err, tc.want)
		}
	}
}
