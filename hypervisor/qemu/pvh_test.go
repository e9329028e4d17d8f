package qemu

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/hypervisor"
)

// fakeELF is an x86-64 ELF whose one PT_NOTE holds a Xen note of type typ.
func fakeELF(typ uint32) []byte {
	le := binary.LittleEndian
	note := make([]byte, 12, 24)
	le.PutUint32(note, 4)     // name size: "Xen\0"
	le.PutUint32(note[4:], 4) // desc size
	le.PutUint32(note[8:], typ)
	note = append(note, "Xen\x00"...)
	note = append(note, 0x00, 0x10, 0x00, 0x01) // the entry address
	b := make([]byte, 64+56)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)  // version
	le.PutUint64(b[32:], 64) // phoff
	le.PutUint16(b[52:], 64) // ehsize
	le.PutUint16(b[54:], 56) // phentsize
	le.PutUint16(b[56:], 1)  // phnum
	ph := b[64:]
	le.PutUint32(ph, 4)         // PT_NOTE
	le.PutUint64(ph[8:], 64+56) // offset
	le.PutUint64(ph[32:], uint64(len(note)))
	le.PutUint64(ph[40:], uint64(len(note)))
	le.PutUint64(ph[48:], 4)
	return append(b, note...)
}

// fakeBzImage wraps a payload as boot protocol 2.15 does.
func fakeBzImage(vmlinux []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(vmlinux)
	w.Close()
	payload := binary.LittleEndian.AppendUint32(z.Bytes(), uint32(len(vmlinux)))
	bz := make([]byte, 2*512+100) // one setup sector after the boot sector
	bz[0x1f1] = 1
	copy(bz[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(bz[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(bz[0x248:], 100) // from the protected-mode code
	binary.LittleEndian.PutUint32(bz[0x24c:], uint32(len(payload)))
	return append(bz, payload...)
}

func TestPVHKernel(t *testing.T) {
	dir := t.TempDir()
	elfPVH := fakeELF(pvhNote)
	bz := filepath.Join(dir, "vmlinuz")
	os.WriteFile(bz, fakeBzImage(elfPVH), 0o644)
	out, err := pvhKernel(bz, filepath.Join(dir, "cache"), image.Blob{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, elfPVH) {
		t.Errorf("extracted %d bytes, want the %d of the ELF", len(got), len(elfPVH))
	}
	if again, err := pvhKernel(bz, filepath.Join(dir, "cache"), image.Blob{}); err != nil || again != out {
		t.Errorf("second call: %s, %v", again, err)
	}
	// With the manifest's digest the cached kernel is found without
	// reading the bzImage; a digest of no cached kernel reads it.
	data, _ := os.ReadFile(bz)
	sum := sha256.Sum256(data)
	known := image.Blob{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if again, err := pvhKernel(bz, filepath.Join(dir, "cache"), known); err != nil || again != out {
		t.Errorf("with the digest: %s, %v", again, err)
	}
	if again, err := pvhKernel(bz, filepath.Join(dir, "cache"), image.Blob{Size: known.Size, SHA256: strings.Repeat("0", 64)}); err != nil || again != out {
		t.Errorf("with a digest of nothing cached: %s, %v", again, err)
	}

	noPVH := filepath.Join(dir, "nopvh")
	os.WriteFile(noPVH, fakeBzImage(fakeELF(pvhNote+1)), 0o644)
	if _, err := pvhKernel(noPVH, filepath.Join(dir, "cache"), image.Blob{}); err == nil || !strings.Contains(err.Error(), "PVH") {
		t.Errorf("a kernel without the note: %v", err)
	}
	notBz := filepath.Join(dir, "elf")
	os.WriteFile(notBz, elfPVH, 0o644)
	if _, err := pvhKernel(notBz, filepath.Join(dir, "cache"), image.Blob{}); err == nil {
		t.Error("an ELF taken for a bzImage")
	}
}

func TestAccelArg(t *testing.T) {
	for _, tt := range []struct {
		tb          int
		accel, want string
	}{
		{0, "tcg", "tcg,tb-size=32"},
		{16, "tcg", "tcg,tb-size=16"},
		{-1, "tcg", "tcg"},
		{0, "kvm", "kvm"},
	} {
		if got := (&Backend{TBSizeMiB: tt.tb}).accelArg(tt.accel); got != tt.want {
			t.Errorf("tb %d, %s: %q, want %q", tt.tb, tt.accel, got, tt.want)
		}
	}
}

func TestTrimZeroTails(t *testing.T) {
	le := binary.LittleEndian
	b := fakeELF(pvhNote)
	// A second program header, PT_LOAD over 8 bytes of data then 4 KiB of
	// zeros.
	le.PutUint16(b[56:], 2)
	ph := make([]byte, 56)
	le.PutUint32(ph, 1)
	data := append([]byte("kernel!!"), make([]byte, 4096)...)
	b = append(b[:64+56], append(ph, b[64+56:]...)...) // after the first header
	off := uint64(len(b))
	le.PutUint64(b[64+56+8:], off)
	le.PutUint64(b[64+56+32:], uint64(len(data)))
	le.PutUint64(b[64+56+40:], uint64(len(data))+100)
	le.PutUint64(b[64+8:], le.Uint64(b[64+8:])+56) // the note moved
	b = append(b, data...)
	trimZeroTails(b)
	if got := le.Uint64(b[64+56+32:]); got != 8 {
		t.Errorf("file size %d, want 8", got)
	}
	if got := le.Uint64(b[64+56+40:]); got != uint64(len(data))+100 {
		t.Errorf("memory size changed to %d", got)
	}
	if err := checkPVH(b); err != nil {
		t.Error(err)
	}
}

// BenchmarkPVHKernelCached is what finding the cached PVH kernel costs each
// boot (reading and hashing the bzImage).
func BenchmarkPVHKernelCached(b *testing.B) {
	k := os.Getenv("KITRUN_BENCH_KERNEL")
	if k == "" {
		b.Skip("KITRUN_BENCH_KERNEL (a bzImage) not set")
	}
	dir := b.TempDir()
	if _, err := pvhKernel(k, dir, image.Blob{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := pvhKernel(k, dir, image.Blob{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestICountOption: the qemu backend's icount option takes a shift from 1
// to 10 and nothing else.
func TestICountOption(t *testing.T) {
	for v, want := range map[string]int{"5": 5, "1": 1, "10": 10} {
		b, err := hypervisor.Open("qemu", hypervisor.Options{"icount": v})
		if err != nil || b.(*Backend).ICountShift != want {
			t.Errorf("icount=%s: %v, %v", v, b, err)
		}
	}
	for _, v := range []string{"0", "11", "auto", "-1"} {
		if _, err := hypervisor.Open("qemu", hypervisor.Options{"icount": v}); err == nil || !strings.Contains(err.Error(), "shift from 1 to 10") {
			t.Errorf("icount=%s: %v, want an error naming the valid shifts", v, err)
		}
	}
}
