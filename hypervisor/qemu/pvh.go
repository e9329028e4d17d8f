package qemu

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/kitrun/kitrun/boot/atomicfile"
	"github.com/kitrun/kitrun/boot/image"
)

// PVH direct boot. An x86 bzImage is a small real-mode and 32-bit loader
// with the kernel inside it, compressed: under TCG, decompressing it (about
// 53 MB out of 14 MB of LZ4 for Debian's cloud kernel) is most of a second
// of the boot, and it leaves the compressed copy, the decompression buffer
// and (with KASLR) a second, randomly placed copy of the kernel resident in
// the guest's RAM (QEMU backs every page the guest ever touched). A kernel
// built with CONFIG_PVH has an ELF entry point that QEMU jumps to directly
// with the ELF's segments already loaded where they belong. kitrun
// extracts that ELF from the bzImage once per kernel (cached by the
// bzImage's digest) and boots it where the machine takes PVH (x86_64
// direct kernel boots). A kernel without the PVH note, or one whose payload
// cannot be unpacked, boots as the bzImage it is. The kernel then runs at
// its link address: there is no decompressor to randomise where it lies
// (no KASLR of the kernel's text), which a test VM can afford.

// pvhNote is XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point note.
const pvhNote = 18

// pvhCacheSuffix names cached kernels; it changes with what pvhKernel
// writes.
const pvhCacheSuffix = "-2.elf"

// maxVmlinux bounds an extracted kernel.
const maxVmlinux = 512 << 20

var pvhMu sync.Mutex

// pvhKernel returns the path of the PVH ELF kernel inside the bzImage at
// path, extracting it into dir (named by the bzImage's SHA-256) unless it
// is there already. It fails when the image is not a bzImage, its payload
// is in a compression kitrun does not read, or the kernel has no PVH entry.
// known, when not empty, is the bzImage's SHA-256 as the image's manifest
// gives it, with its size: a file of that size is taken to be it, which
// saves reading and hashing 14 MB (20 ms here) on every boot.
func pvhKernel(path, dir string, known image.Blob) (string, error) {
	name := func(sum []byte) string {
		return filepath.Join(dir, hex.EncodeToString(sum[:16])+pvhCacheSuffix)
	}
	if sum, err := hex.DecodeString(known.SHA256); err == nil && len(sum) == sha256.Size {
		if st, err := os.Stat(path); err == nil && st.Size() == known.Size {
			if _, err := os.Stat(name(sum)); err == nil {
				return name(sum), nil
			}
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	out := name(sum[:])
	pvhMu.Lock()
	defer pvhMu.Unlock()
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	vmlinux, err := extractVmlinux(data)
	if err != nil {
		return "", err
	}
	if err := checkPVH(vmlinux); err != nil {
		return "", err
	}
	trimZeroTails(vmlinux)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.Write(out, vmlinux, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// extractVmlinux unpacks the kernel ELF from a bzImage (boot protocol
// 2.08 or later: payload_offset and payload_length in the setup header).
func extractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage")
	}
	if v := binary.LittleEndian.Uint16(bz[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x has no payload fields", v)
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if start < 0 || n <= 0 || start+n > len(bz) {
		return nil, errors.New("bzImage payload out of range")
	}
	payload := bz[start : start+n]
	var r io.Reader
	switch {
	case bytes.HasPrefix(payload, []byte{0x02, 0x21, 0x4c, 0x18}): // LZ4 legacy frames
		r = lz4.NewReader(bytes.NewReader(payload))
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderMaxMemory(maxVmlinux))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		z.Multistream(false)
		r = z
	default:
		return nil, fmt.Errorf("bzImage payload compressed with an unsupported method (% x)", payload[:min(4, len(payload))])
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, io.LimitReader(r, maxVmlinux+1)); err != nil && out.Len() == 0 {
		return nil, fmt.Errorf("unpacking the kernel: %w", err)
	}
	if out.Len() > maxVmlinux {
		return nil, errors.New("kernel over the size limit")
	}
	// The payload ends with the uncompressed size (4 bytes, LE), which
	// LZ4's legacy reader may take for the start of another block.
	if n >= 4 {
		if size := int(binary.LittleEndian.Uint32(payload[n-4:])); size > 0 && size <= out.Len() {
			return out.Bytes()[:size], nil
		}
	}
	return out.Bytes(), nil
}

// trimZeroTails shortens each loadable segment's file part to end at its
// last non-zero byte; the loader zero-fills up to its memory size as
// before. QEMU keeps the kernel file mapped (to reload it on reset), and
// every page it read stays in its RSS: Debian's cloud kernel ends its last
// segment with 11 MiB of zeros (.bss and .init.scratch, stored).
func trimZeroTails(vmlinux []byte) {
	if len(vmlinux) < 64 || vmlinux[4] != 2 || vmlinux[5] != 1 { // ELF64, little-endian
		return
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := le.Uint64(vmlinux[32:]), uint64(le.Uint16(vmlinux[54:])), uint64(le.Uint16(vmlinux[56:]))
	if phentsize < 56 || phoff > uint64(len(vmlinux)) || phnum*phentsize > uint64(len(vmlinux))-phoff {
		return
	}
	for i := range phnum {
		ph := vmlinux[phoff+i*phentsize:]
		if le.Uint32(ph) != uint32(elf.PT_LOAD) {
			continue
		}
		off, filesz := le.Uint64(ph[8:]), le.Uint64(ph[32:])
		if off > uint64(len(vmlinux)) || filesz > uint64(len(vmlinux))-off {
			continue
		}
		n := uint64(len(bytes.TrimRight(vmlinux[off:off+filesz], "\x00")))
		le.PutUint64(ph[32:], n)
	}
}

// checkPVH says whether an ELF kernel has a PVH entry point.
func checkPVH(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("the bzImage's payload: %w", err)
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("the bzImage's payload is for %s", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			return err
		}
		for len(b) >= 12 {
			nameSz := int(f.ByteOrder.Uint32(b))
			descSz := int(f.ByteOrder.Uint32(b[4:]))
			typ := f.ByteOrder.Uint32(b[8:])
			name := b[12:min(len(b), 12+nameSz)]
			if bytes.Equal(bytes.TrimRight(name, "\x00"), []byte("Xen")) && typ == pvhNote {
				return nil
			}
			next := 12 + (nameSz+3)&^3 + (descSz+3)&^3
			if next <= 0 || next > len(b) {
				break
			}
			b = b[next:]
		}
	}
	return errors.New("the kernel has no PVH entry point (CONFIG_PVH)")
}

func (b *Backend) cacheDir() string {
	if b.CacheDir != "" {
		return b.CacheDir
	}
	if d := os.Getenv("KITRUN_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "kitrun")
}
