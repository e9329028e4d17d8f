package uki_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/pe"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/boot/disk"
	"github.com/kitrun/kitrun/boot/disk/uki"
	"github.com/kitrun/kitrun/hypervisor/qemu/qemutest"
)

var stubs = map[string][2]string{
	"x86_64":  {"amd64", "usr/lib/systemd/boot/efi/linuxx64.efi.stub"},
	"aarch64": {"arm64", "usr/lib/systemd/boot/efi/linuxaa64.efi.stub"},
}

func stub(t *testing.T, archName string) string {
	t.Helper()
	l := &disk.Loaders{PackageDir: filepath.Join(assemble.DefaultCacheDir(), "packages"), CacheDir: t.TempDir()}
	s := stubs[archName]
	p, err := l.File(context.Background(), "systemd-boot-efi", s[0], s[1])
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

func writeFile(t *testing.T, im *uki.Image) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "uki.efi")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := im.Write(f); err != nil {
		t.Fatal(err)
	}
	return p
}

// peChecksum is the PE checksum the slow, obvious way.
func peChecksum(b []byte, field int) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		if i == field || i == field+2 {
			continue
		}
		s += uint32(binary.LittleEndian.Uint16(b[i:]))
		s = s&0xffff + s>>16
	}
	return s + uint32(len(b))
}

func TestSectionsReadBack(t *testing.T) {
	for _, archName := range []string{"x86_64", "aarch64"} {
		t.Run(archName, func(t *testing.T) {
			a := qemutest.Require(t, archName)
			k := qemutest.Kernel(t, a)
			initrd := filepath.Join(t.TempDir(), "initrd")
			os.WriteFile(initrd, bytes.Repeat([]byte("070701"), 1001), 0o644)
			in := uki.Input{Stub: stub(t, archName), Kernel: k.Image, Initrd: initrd,
				Cmdline: "console=ttyS0 panic=-1", OSRelease: "ID=kitrun\nNAME=kitrun\n"}
			im, err := uki.New(in)
			if err != nil {
				t.Fatal(err)
			}
			p := writeFile(t, im)
			checkImage(t, p, in, im)
		})
	}
}

func checkImage(t *testing.T, p string, in uki.Input, im *uki.Image) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != im.Size() {
		t.Fatalf("file is %d bytes, Size says %d", len(raw), im.Size())
	}
	f, err := pe.Open(p)
	if err != nil {
		t.Fatalf("debug/pe: %v", err)
	}
	defer f.Close()
	o := f.OptionalHeader.(*pe.OptionalHeader64)
	if f.Machine != im.Machine || o.Subsystem != pe.IMAGE_SUBSYSTEM_EFI_APPLICATION {
		t.Errorf("machine %#x subsystem %d", f.Machine, o.Subsystem)
	}
	if f.PointerToSymbolTable != 0 || f.NumberOfSymbols != 0 {
		t.Errorf("symbol table kept: %d at %d", f.NumberOfSymbols, f.PointerToSymbolTable)
	}
	stubPE, err := pe.Open(in.Stub)
	if err != nil {
		t.Fatal(err)
	}
	defer stubPE.Close()
	so := stubPE.OptionalHeader.(*pe.OptionalHeader64)
	if int(f.NumberOfSections) != len(stubPE.Sections)+4 || len(f.Sections) != int(f.NumberOfSections) {
		t.Fatalf("%d sections, stub had %d", f.NumberOfSections, len(stubPE.Sections))
	}
	kernel, _ := os.ReadFile(in.Kernel)
	if bytes.HasPrefix(kernel, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(kernel))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(zr)
		kernel = b.Bytes()
	}
	initrd, _ := os.ReadFile(in.Initrd)
	want := map[string][]byte{".osrel": []byte(in.OSRelease), ".cmdline": []byte(in.Cmdline), ".initrd": initrd, ".linux": kernel}
	prevEnd := uint32(0)
	for _, s := range stubPE.Sections {
		prevEnd = max(prevEnd, s.VirtualAddress+s.VirtualSize)
	}
	var initData uint32
	for i, s := range f.Sections[len(stubPE.Sections):] {
		w, ok := want[s.Name]
		if !ok {
			t.Errorf("unexpected section %s", s.Name)
			continue
		}
		got, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		if s.VirtualSize != uint32(len(w)) || !bytes.Equal(got[:len(w)], w) {
			t.Errorf("%s: virtual size %d, %d bytes given, content equal %v", s.Name, s.VirtualSize, len(w), bytes.Equal(got[:min(len(got), len(w))], w))
		}
		if s.VirtualAddress%o.SectionAlignment != 0 || s.Offset%o.FileAlignment != 0 || s.Size%o.FileAlignment != 0 {
			t.Errorf("%s: VA %#x raw %#x size %#x not aligned (%#x, %#x)", s.Name, s.VirtualAddress, s.Offset, s.Size, o.SectionAlignment, o.FileAlignment)
		}
		if s.VirtualAddress < prevEnd {
			t.Errorf("%s at VA %#x overlaps what ends at %#x", s.Name, s.VirtualAddress, prevEnd)
		}
		if s.Characteristics != pe.IMAGE_SCN_CNT_INITIALIZED_DATA|pe.IMAGE_SCN_MEM_READ {
			t.Errorf("%s: characteristics %#x", s.Name, s.Characteristics)
		}
		prevEnd = s.VirtualAddress + s.VirtualSize
		initData += s.Size
		if i == 3 && s.Name != ".linux" {
			t.Errorf("last section is %s, want .linux", s.Name)
		}
	}
	if wantImg := (prevEnd + o.SectionAlignment - 1) / o.SectionAlignment * o.SectionAlignment; o.SizeOfImage != wantImg {
		t.Errorf("SizeOfImage %#x, want %#x", o.SizeOfImage, wantImg)
	}
	if o.SizeOfInitializedData != so.SizeOfInitializedData+initData {
		t.Errorf("SizeOfInitializedData %#x, want %#x", o.SizeOfInitializedData, so.SizeOfInitializedData+initData)
	}
	field := int(binary.LittleEndian.Uint32(raw[0x3c:])) + 24 + 64
	if sum := peChecksum(raw, field); o.CheckSum != sum {
		t.Errorf("CheckSum %#x, want %#x", o.CheckSum, sum)
	}
}

// TestGzipKernel gives a gzip-compressed Image (as some distributions ship
// arm64 kernels): .linux must hold the PE image inside.
func TestGzipKernel(t *testing.T) {
	a := qemutest.Require(t, "aarch64")
	k := qemutest.Kernel(t, a)
	img, err := os.ReadFile(k.Image)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gz := filepath.Join(dir, "Image.gz")
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(img)
	zw.Close()
	os.WriteFile(gz, b.Bytes(), 0o644)
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, []byte("x"), 0o644)
	in := uki.Input{Stub: stub(t, "aarch64"), Kernel: gz, Initrd: initrd, Cmdline: "x", OSRelease: "ID=x\n"}
	im, err := uki.New(in)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, writeFile(t, im), in, im)
}

func TestReproducible(t *testing.T) {
	a := qemutest.Require(t, "x86_64")
	k := qemutest.Kernel(t, a)
	initrd := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(initrd, []byte("initrd"), 0o644)
	in := uki.Input{Stub: stub(t, "x86_64"), Kernel: k.Image, Initrd: initrd, Cmdline: "quiet"}
	var prev []byte
	for range 2 {
		im, err := uki.New(in)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(writeFile(t, im))
		if prev != nil && !bytes.Equal(prev, b) {
			t.Fatal("two images of the same input differ")
		}
		prev = b
	}
}

func TestBadInput(t *testing.T) {
	x86 := qemutest.Kernel(t, qemutest.Require(t, "x86_64"))
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("this is not a kernel"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	armStub := stub(t, "aarch64")
	for _, tc := range []struct {
		in   uki.Input
		want string
	}{
		{uki.Input{Stub: junk, Kernel: x86.Image, Initrd: junk}, "no MZ header"},
		{uki.Input{Stub: filepath.Join(dir, "missing"), Kernel: x86.Image, Initrd: junk}, "no such file"},
		{uki.Input{Stub: armStub, Kernel: junk, Initrd: junk}, "not an EFI-stub kernel"},
		{uki.Input{Stub: armStub, Kernel: x86.Image, Initrd: junk}, "PE machine 0x8664, the stub for 0xaa64"},
		{uki.Input{Stub: stub(t, "x86_64"), Kernel: x86.Image, Initrd: empty}, "not a non-empty file"},
	} {
		_, err := uki.New(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}
