package qemu

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	out, err := pvhKernel(bz, filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, elfPVH) {
		t.Errorf("extracted %d bytes, want the %d of the ELF", len(got), len(elfPVH))
	}
	if again, err := pvhKernel(bz, filepath.Join(dir, "cache")); err != nil || again != out {
		t.Errorf("second call: %s, %v", again, err)
	}

	noPVH := filepath.Join(dir, "nopvh")
	os.WriteFile(noPVH, fakeBzImage(fakeELF(pvhNote+1)), 0o644)
	if _, err := pvhKernel(noPVH, filepath.Join(dir, "cache")); err == nil || !strings.Contains(err.Error(), "PVH") {
		t.Errorf("a kernel without the note: %v", err)
	}
	notBz := filepath.Join(dir, "elf")
	os.WriteFile(notBz, elfPVH, 0o644)
	if _, err := pvhKernel(notBz, filepath.Join(dir, "cache")); err == nil {
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
