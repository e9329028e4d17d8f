// Package rawtest holds what the virtual-disk writers' tests share: raw
// disk images with known content (data, holes, awkward sizes), and
// qemu-img as the independent reader that checks what they write.
package rawtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/internal/rawscan"
)

// Case is one raw input image.
type Case struct {
	Name string
	Size int64
	// Extents are the non-zero data written into an otherwise sparse file.
	Extents []Extent
	// Big cases take seconds (and GiBs of sparse files) to check.
	Big bool
}

// Extent is data at an offset; Random fills it with a seeded pseudo-random
// pattern (incompressible), else with a compressible text pattern.
type Extent struct {
	Off, Len int64
	Random   bool
}

const (
	KiB = int64(1) << 10
	MiB = KiB << 10
	GiB = MiB << 10
)

// Cases are the inputs every writer is checked against.
func Cases() []Case {
	return []Case{
		{Name: "one-sector", Size: 512, Extents: []Extent{{0, 512, true}}},
		// Not a multiple of any cluster, grain or block size.
		{Name: "small", Size: 200 * KiB, Extents: []Extent{{0, 200 * KiB, true}}},
		{Name: "all-zero", Size: 3 * MiB},
		// Holes of every size, data across unit and block boundaries, a
		// single byte in a unit, the last sector.
		{Name: "sparse", Size: 40 * MiB, Extents: []Extent{
			{0, 4 * KiB, false},
			{MiB + 512, 7, false},
			{17 * MiB, MiB, true},
			{32*MiB - 100, 200, true},
			{40*MiB - 512, 512, false},
		}},
		// A size that is a whole number of sectors but of nothing larger,
		// with data in the partial last unit.
		{Name: "odd-size", Size: 5*MiB + 7*512, Extents: []Extent{
			{0, 2 * MiB, true},
			{3 * MiB, 300 * KiB, false},
			{5 * MiB, 7 * 512, true},
		}},
		{Name: "multi-mib", Size: 12 * MiB, Extents: []Extent{{0, 12 * MiB, true}}},
		fragmented(),
	}
}

// fragmented has many small extents (more runs than one tar header or
// one extension block maps; across a VMDK grain table's 32 MiB).
func fragmented() Case {
	c := Case{Name: "fragmented", Size: 48 * MiB}
	for off := int64(0); off+MiB < c.Size; off += 1200 * KiB {
		c.Extents = append(c.Extents, Extent{off + 512, 4 * KiB, len(c.Extents)%2 == 0})
	}
	return c
}

// BigCase crosses the boundaries of every container's second-level
// tables: qcow2's 512 MiB per L2 table, VMDK's 32 MiB per grain table,
// VHDX's 4 GiB per sector-bitmap chunk (with 1 MiB blocks).
func BigCase() Case {
	return Case{Name: "big-sparse", Size: 4*GiB + 40*MiB, Big: true, Extents: []Extent{
		{0, 64 * KiB, true},
		{600 * MiB, 100 * KiB, false},
		{4*GiB - 512, 1024, true},
		{4*GiB + 33*MiB, 3 * MiB, true},
		{4*GiB + 40*MiB - 512, 512, false},
	}}
}

// Data is the number of bytes of data the case holds.
func (c Case) Data() int64 {
	var n int64
	for _, e := range c.Extents {
		n += e.Len
	}
	return n
}

// SizeLimit bounds a container of the case that stores no blocks of
// zeros: its data, plus up to a block (1 MiB at most) around each extent,
// plus a few MiB of metadata.
func (c Case) SizeLimit() int64 {
	return 2*c.Data() + int64(len(c.Extents))*MiB + 5*MiB
}

// Make writes the case as a sparse file in dir and returns its path.
func (c Case) Make(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, c.Name+".raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(c.Size); err != nil {
		t.Fatal(err)
	}
	for i, e := range c.Extents {
		if _, err := f.WriteAt(Pattern(uint64(i), e.Len, e.Random), e.Off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Pattern returns n bytes of deterministic content.
func Pattern(seed uint64, n int64, random bool) []byte {
	b := make([]byte, n)
	if random {
		r := rand.New(rand.NewPCG(seed, 0x6b697472756e))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	text := []byte("kitrun raw test pattern 0123456789 ")
	for i := range b {
		b[i] = text[(int(seed)+i)%len(text)]
	}
	return b
}

// QemuImg runs qemu-img and returns its standard output; it fails the
// test with qemu-img's own words if it exits non-zero.
func QemuImg(t testing.TB, args ...string) string {
	t.Helper()
	out, err := QemuImgErr(t, args...)
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// QemuImgErr runs qemu-img and returns its output and error.
func QemuImgErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	RequireTool(t, "qemu-img")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("qemu-img", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// RequireTool skips the test when a host tool is missing (fails it in CI,
// where `make deps` must have installed it).
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %s not installed (run `make deps`)", name)
		}
		t.Skipf("%s not installed (run `make deps`)", name)
	}
}

// Info is what `qemu-img info` reports.
type Info struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
}

// ImageInfo runs `qemu-img info -f format`.
func ImageInfo(t testing.TB, format, path string) Info {
	t.Helper()
	var info Info
	out := QemuImg(t, "info", "-f", format, "--output=json", path)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("qemu-img info output: %v\n%s", err, out)
	}
	return info
}

// Check runs `qemu-img check -f format` and fails on any finding.
func Check(t testing.TB, format, path string) {
	t.Helper()
	out, err := QemuImgErr(t, "check", "-f", format, path)
	if err != nil {
		t.Fatalf("qemu-img check -f %s %s: %v\n%s", format, path, err, out)
	}
	if !strings.Contains(out, "No errors were found") {
		t.Fatalf("qemu-img check -f %s %s did not report a clean image:\n%s", format, path, out)
	}
}

// SameAsRaw checks that qemu-img reads the image at path (in qemu-img's
// format) as exactly the raw image, by converting it back to raw and
// comparing the bytes.
func SameAsRaw(t testing.TB, format, path, raw string) {
	t.Helper()
	back := filepath.Join(t.TempDir(), "back.raw")
	QemuImg(t, "convert", "-f", format, "-O", "raw", path, back)
	SameFile(t, raw, back)
}

// SameFile fails unless the two files hold the same bytes. Ranges that
// are holes in both are skipped: they read as zeros.
func SameFile(t testing.TB, want, got string) {
	t.Helper()
	a, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stA, _ := a.Stat()
	stB, _ := b.Stat()
	if stA.Size() != stB.Size() {
		t.Fatalf("%s is %d bytes, %s %d", want, stA.Size(), got, stB.Size())
	}
	size := stA.Size()
	bufA, bufB := make([]byte, MiB), make([]byte, MiB)
	for off := int64(0); off < size; {
		if next := min(rawscan.NextData(a, off, size), rawscan.NextData(b, off, size)); next > off {
			off = next
			continue
		}
		n := min(MiB, size-off)
		if err := rawscan.ReadFull(a, bufA[:n], off); err != nil {
			t.Fatal(err)
		}
		if err := rawscan.ReadFull(b, bufB[:n], off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bufA[:n], bufB[:n]) {
			i := 0
			for bufA[i] == bufB[i] {
				i++
			}
			t.Fatalf("%s and %s differ at byte %d", want, got, off+int64(i))
		}
		off += n
	}
}

// WriteFunc is a writer's signature: the raw image of size bytes read
// from src, written to w.
type WriteFunc func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) error

// Write runs write on the raw file and stores its output at out.
func Write(t testing.TB, raw, out string, write WriteFunc) {
	t.Helper()
	if err := WriteErr(raw, out, write); err != nil {
		t.Fatal(err)
	}
}

// WriteErr is Write returning the writer's error.
func WriteErr(raw, out string, write WriteFunc) error {
	in, err := os.Open(raw)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(context.Background(), bw, in, st.Size())
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Readers names the independent readers of a container format.
type Readers struct {
	// Qemu is qemu-img's name for the format; Check says whether
	// `qemu-img check` supports it.
	Qemu  string
	Check bool
	// Libyal is "vhd", "vhdx" or "vmdk" for a second reader, libyal's
	// libvhdi or libvmdk (a different code base from QEMU's), or "".
	Libyal string
}

// RoundTrip checks a container writer against every case (the big one
// too unless -short): qemu-img check finds nothing wrong (when it can
// check the format), qemu-img info reports the raw image's size, qemu-img
// and libyal read back exactly the raw image, zeros take no space, and
// two writes give the same bytes.
func RoundTrip(t *testing.T, r Readers, write WriteFunc) {
	cases := Cases()
	if !testing.Short() {
		cases = append(cases, BigCase())
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			raw := c.Make(t, dir)
			out := filepath.Join(dir, "disk."+r.Qemu)
			Write(t, raw, out, write)
			if r.Check {
				Check(t, r.Qemu, out)
			}
			info := ImageInfo(t, r.Qemu, out)
			if info.VirtualSize != c.Size {
				t.Errorf("qemu-img info: virtual size %d, want %d", info.VirtualSize, c.Size)
			}
			SameAsRaw(t, r.Qemu, out, raw)
			if r.Libyal != "" && !c.Big { // libyal reads every byte: minutes for the big one
				SameFile(t, raw, LibyalToRaw(t, r.Libyal, out))
			}

			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > c.SizeLimit() {
				t.Errorf("%s is %d bytes for %d bytes of data: were zeros stored?", out, st.Size(), c.Data())
			}
			t.Logf("%s: %d bytes of data in %d bytes of raw image: %d bytes", r.Qemu, c.Data(), c.Size, st.Size())

			again := filepath.Join(dir, "again."+r.Qemu)
			Write(t, raw, again, write)
			SameFile(t, out, again)
		})
	}
}

// libyalRead reads a container with libyal's Python bindings (Debian's
// python3-libvhdi and python3-libvmdk) into a sparse raw file.
const libyalRead = `
import sys
kind, src, dst = sys.argv[1:4]
if kind == "vmdk":
    import pyvmdk
    h = pyvmdk.handle()
    h.open(src)
    h.open_extent_data_files()
else:
    import pyvhdi
    h = pyvhdi.file()
    h.open(src)
    want = {"vhd": 2, "vhdx": 3}[kind]  # fixed, dynamic
    if h.get_disk_type() != want:
        sys.exit("disk type %d, want %d" % (h.get_disk_type(), want))
size = h.get_media_size()
chunk = 1 << 20
zero = bytes(chunk)
with open(dst, "wb") as out:
    off = 0
    while off < size:
        n = min(chunk, size - off)
        b = h.read_buffer_at_offset(n, off)
        if len(b) != n:
            sys.exit("short read at %d: %d of %d bytes" % (off, len(b), n))
        if b == zero[:n]:
            out.seek(n, 1)
        else:
            out.write(b)
        off += n
    out.truncate(size)
h.close()
`

// LibyalToRaw reads the container at path (kind "vhd", "vhdx" or "vmdk")
// with libyal and returns the path of the raw image it read.
func LibyalToRaw(t testing.TB, kind, path string) string {
	t.Helper()
	const python = "/usr/bin/python3" // Debian's, which has the bindings
	module := map[string]string{"vhd": "pyvhdi", "vhdx": "pyvhdi", "vmdk": "pyvmdk"}[kind]
	if err := exec.Command(python, "-c", "import "+module).Run(); err != nil {
		pkg := map[string]string{"pyvhdi": "python3-libvhdi", "pyvmdk": "python3-libvmdk"}[module]
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %s not installed (run `make deps`)", pkg)
		}
		t.Skipf("%s not installed (run `make deps`)", pkg)
	}
	back := filepath.Join(t.TempDir(), "libyal.raw")
	if out, err := exec.Command(python, "-c", libyalRead, kind, path, back).CombinedOutput(); err != nil {
		t.Fatalf("libyal could not read %s as %s: %v\n%s", path, kind, err, out)
	}
	return back
}
