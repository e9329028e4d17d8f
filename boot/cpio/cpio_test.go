package cpio

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	ccpio "github.com/cavaliergopher/cpio"
)

// sample is a small tree using every kind of entry kitrun writes.
func sample() []Record {
	return []Record{
		Dir("etc", 0755),
		File("etc/motd", []byte("hello\n"), 0644),
		File("/etc/kitinit.json", []byte(`{"hostname":"vm"}`), 0600),
		File("init", bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 1000), 0755),
		File("empty", nil, 0644),
		Symlink("bin/sh", "/bin/busybox"),
		CharDev("dev/console", 0600, 5, 1),
		{Name: "root", Mode: TypeDir | 0700, UID: 0, GID: 0, MTime: 1700000000},
		{Name: "home/user/.profile", Mode: TypeReg | 0640, UID: 1000, GID: 1000, Data: []byte("PS1='$ '\n")},
		File("lib/modules/6.1.0/kernel/drivers/virtio/virtio.ko", []byte("abc"), 0644),
	}
}

func readAll(t testing.TB, b []byte) []Record {
	t.Helper()
	rd := NewReader(bytes.NewReader(b))
	var out []Record
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(out), err)
		}
		out = append(out, r)
	}
}

func writeTree(t testing.TB, recs []Record, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTree(&buf, recs, opts...); err != nil {
		t.Fatalf("WriteTree: %v", err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	in := []Record{
		Dir("etc", 0755),
		File("/etc/motd", []byte("hi\n"), 0644),
		Symlink("sh", "busybox"),
		CharDev("console", 0600, 5, 1),
		{Name: "x", Mode: TypeReg | 04755, UID: 7, GID: 8, MTime: 1234567890, Data: []byte("12345"), Ino: 99, NLink: 1, DevMajor: 3, DevMinor: 4},
	}
	for _, r := range in {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%512 != 0 {
		t.Errorf("archive is %d bytes, not a multiple of 512", buf.Len())
	}
	got := readAll(t, buf.Bytes())
	want := []Record{
		{Name: "etc", Mode: TypeDir | 0755, NLink: 2, Ino: 1},
		{Name: "etc/motd", Mode: TypeReg | 0644, NLink: 1, Ino: 2, Data: []byte("hi\n")},
		{Name: "sh", Mode: TypeSymlink | 0777, NLink: 1, Ino: 3, Data: []byte("busybox")},
		{Name: "console", Mode: TypeChar | 0600, NLink: 1, Ino: 4, RDevMajor: 5, RDevMinor: 1},
		in[4],
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
}

func TestWriteTreeReproducible(t *testing.T) {
	want := writeTree(t, sample())
	for seed := int64(0); seed < 20; seed++ {
		recs := sample()
		rand.New(rand.NewSource(seed)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		if got := writeTree(t, recs); !bytes.Equal(got, want) {
			t.Fatalf("seed %d: output differs from unshuffled input", seed)
		}
	}
}

func TestWriteTreeParents(t *testing.T) {
	recs := readAll(t, writeTree(t, sample()))
	var names []string
	seen := map[string]Record{}
	for _, r := range recs {
		names = append(names, r.Name)
		seen[r.Name] = r
		if i := strings.LastIndexByte(r.Name, '/'); i >= 0 {
			p, ok := seen[r.Name[:i]]
			if !ok || !p.IsDir() {
				t.Errorf("%q comes before its parent directory", r.Name)
			}
		}
	}
	wantNames := []string{
		"bin", "bin/sh", "dev", "dev/console", "empty", "etc", "etc/kitinit.json", "etc/motd",
		"home", "home/user", "home/user/.profile", "init",
		"lib", "lib/modules", "lib/modules/6.1.0", "lib/modules/6.1.0/kernel",
		"lib/modules/6.1.0/kernel/drivers", "lib/modules/6.1.0/kernel/drivers/virtio",
		"lib/modules/6.1.0/kernel/drivers/virtio/virtio.ko", "root",
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("names\n%q\nwant\n%q", names, wantNames)
	}
	added := seen["home/user"]
	if added.Mode != TypeDir|0755 || added.UID != 0 || added.GID != 0 || added.MTime != 0 {
		t.Errorf("added parent = %+v, want mode 040755, owner 0:0, mtime 0", added)
	}
	if r := seen["root"]; r.Mode != TypeDir|0700 || r.MTime != 1700000000 {
		t.Errorf("explicit dir changed: %+v", r)
	}
	for i, r := range recs {
		if r.Ino != uint32(i+1) {
			t.Errorf("%q: ino %d, want %d", r.Name, r.Ino, i+1)
		}
	}
}

func TestWriteTreeConflicts(t *testing.T) {
	var buf bytes.Buffer
	// Identical directories from two sources merge.
	if err := WriteTree(&buf, []Record{Dir("etc", 0755), Dir("/etc", 0755)}); err != nil {
		t.Errorf("identical dirs: %v", err)
	}
	for _, tc := range []struct {
		recs []Record
		want string
	}{
		{[]Record{File("a", nil, 0644), File("a", nil, 0644)}, `"a" given twice`},
		{[]Record{Dir("etc", 0755), Dir("etc", 0700)}, `"etc" given twice`},
		{[]Record{File("etc", nil, 0644), File("etc/motd", nil, 0644)}, `parent directory "etc", but that is a regular file`},
		{[]Record{File("a/../b", nil, 0644)}, `".." component`},
	} {
		err := WriteTree(io.Discard, tc.recs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteTree(%v) = %v, want error containing %s", tc.recs, err, tc.want)
		}
	}
}

// TestIndependentReader reads our archive with github.com/cavaliergopher/cpio.
func TestIndependentReader(t *testing.T) {
	b := writeTree(t, sample())
	want := map[string]Record{}
	for _, r := range readAll(t, b) {
		want[r.Name] = r
	}
	rd := ccpio.NewReader(bytes.NewReader(b))
	n := 0
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("cavaliergopher/cpio: %v", err)
		}
		n++
		w, ok := want[h.Name]
		if !ok {
			t.Errorf("unexpected entry %q", h.Name)
			continue
		}
		if uint32(h.Mode) != w.Mode {
			t.Errorf("%q: mode %o, want %o", h.Name, h.Mode, w.Mode)
		}
		if h.Uid != int(w.UID) || h.Guid != int(w.GID) || h.Inode != int64(w.Ino) || h.Links != int(w.NLink) ||
			h.ModTime.Unix() != w.MTime {
			t.Errorf("%q: header %+v does not match %+v", h.Name, h, w)
		}
		data, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		if w.IsSymlink() {
			if h.Linkname != string(w.Data) {
				t.Errorf("%q: link target %q, want %q", h.Name, h.Linkname, w.Data)
			}
		} else if !bytes.Equal(data, w.Data) {
			t.Errorf("%q: data %q, want %q", h.Name, data, w.Data)
		}
	}
	if n != len(want) {
		t.Errorf("cavaliergopher/cpio read %d entries, want %d", n, len(want))
	}
	// And the specific facts, spelled out rather than derived from our reader.
	for name, mode := range map[string]uint32{"etc": 040755, "etc/motd": 0100644, "bin/sh": 0120777, "init": 0100755, "dev/console": 020600} {
		if want[name].Mode != mode {
			t.Errorf("%q: mode %o, want %o", name, want[name].Mode, mode)
		}
	}
}

// TestGolden pins the exact bytes of a tiny archive: the field order, the
// hex encoding, NUL-terminated names, 4-byte padding after header+name and
// after data, the trailer and the padding to 512 bytes.
func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, r := range []Record{Dir("etc", 0755), File("etc/motd", []byte("hi\n"), 0644)} {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	const z = "00000000"
	want := "" +
		// magic   ino         mode        uid gid nlink       mtime filesize    dev   rdev  namesize    check
		"070701" + "00000001" + "000041ED" + z + z + "00000002" + z + z + /**/ z + z + z + z + "00000004" + z +
		"etc\x00" + "\x00\x00" + // 110+4 = 114, padded to 116
		"070701" + "00000002" + "000081A4" + z + z + "00000001" + z + "00000003" + z + z + z + z + "00000009" + z +
		"etc/motd\x00" + "\x00" + // 116+110+9 = 235, padded to 236
		"hi\n" + "\x00" + // 239, padded to 240
		"070701" + z + z + z + z + "00000001" + z + z + /**/ z + z + z + z + "0000000B" + z +
		"TRAILER!!!\x00" + "\x00\x00\x00" // 240+110+11 = 361, padded to 364
	want += strings.Repeat("\x00", 512-364)
	if got := buf.String(); got != want {
		t.Errorf("archive bytes differ\n got %q\nwant %q", got, want)
	}
}

func TestPadTo(t *testing.T) {
	for _, tc := range []struct{ pad, want int }{{0, 364}, {4, 364}, {512, 512}, {1024, 1024}, {100, 400}} {
		var buf bytes.Buffer
		w := NewWriter(&buf, PadTo(tc.pad))
		w.WriteRecord(Dir("etc", 0755))
		w.WriteRecord(File("etc/motd", []byte("hi\n"), 0644))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != tc.want {
			t.Errorf("PadTo(%d): %d bytes, want %d", tc.pad, buf.Len(), tc.want)
		}
	}
}

func TestWriterValidation(t *testing.T) {
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{File("", nil, 0644), "empty name"},
		{File("/", nil, 0644), "empty name"},
		{Dir(".", 0755), "reserved name"},
		{File("TRAILER!!!", nil, 0644), "reserved name"},
		{File("../etc/passwd", nil, 0644), `".." component`},
		{File("a/../../b", nil, 0644), `".." component`},
		{File("a//b", nil, 0644), "not clean"},
		{File("a/./b", nil, 0644), "not clean"},
		{Dir("a/", 0755), "not clean"},
		{File("a\x00b", nil, 0644), "NUL"},
		{File(strings.Repeat("a", 4096), nil, 0644), "longer than"},
		{Record{Name: "x", Mode: 0644}, "no valid file type"},
		{Record{Name: "x", Mode: TypeReg | 0644 | 1<<20}, "unknown bits"},
		{Record{Name: "x", Mode: TypeDir | 0755, Data: []byte("x")}, "only regular files and symlinks"},
		{Symlink("x", ""), "empty target"},
		{Record{Name: "x", Mode: TypeReg | 0644, MTime: -1}, "mtime"},
		{Record{Name: "x", Mode: TypeReg | 0644, MTime: 1 << 32}, "mtime"},
	} {
		err := NewWriter(io.Discard).WriteRecord(tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteRecord(%.60q) = %v, want error containing %q", tc.r.Name, err, tc.want)
		}
	}

	w := NewWriter(io.Discard)
	if err := w.WriteRecord(File("a", nil, 0644)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(File("/a", nil, 0644)); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(File("b", nil, 0644)); err == nil {
		t.Error("WriteRecord after Close succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterStickyError(t *testing.T) {
	w := NewWriter(&failWriter{n: 1})
	if err := w.WriteRecord(File("a", []byte("x"), 0644)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("first write: %v", err)
	}
	if err := w.WriteRecord(File("b", nil, 0644)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("second write: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after failed write succeeded")
	}
}

func TestReaderErrors(t *testing.T) {
	good := writeTree(t, []Record{File("etc/motd", []byte("hello\n"), 0644)}, PadTo(4))
	mutate := func(off int, s string) []byte {
		b := bytes.Clone(good)
		copy(b[off:], s)
		return b
	}
	for name, tc := range map[string]struct {
		in   []byte
		want error
		msg  string
	}{
		"bad magic":        {mutate(0, "070707"), ErrFormat, "bad magic"},
		"binary magic":     {mutate(0, "\xc7\x71\x00\x00\x00\x00"), ErrFormat, "bad magic"},
		"bad hex":          {mutate(6, "0000000G"), ErrFormat, "ino field"},
		"namesize 0":       {mutate(6+8*11, "00000000"), ErrFormat, "namesize 0"},
		"namesize huge":    {mutate(6+8*11, "00100000"), ErrFormat, "namesize"},
		"name without NUL": {mutate(6+8*11, "00000003"), ErrFormat, "NUL-terminated"},
		"empty input":      {nil, io.ErrUnexpectedEOF, "without a trailer"},
		"no trailer":       {good[:116], io.ErrUnexpectedEOF, "without a trailer"},
		"bad crc":          {mutate(116+5, "2"), ErrFormat, "checksum"},
	} {
		rd := NewReader(bytes.NewReader(tc.in))
		var err error
		for err == nil {
			_, err = rd.Next()
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v containing %q", name, err, tc.want, tc.msg)
		}
		if _, err2 := rd.Next(); err2 != err {
			t.Errorf("%s: error not sticky: %v then %v", name, err, err2)
		}
	}

	// Every truncation before the end of the trailer is an unexpected EOF.
	end := len(good)
	for n := 0; n < end; n++ {
		rd := NewReader(bytes.NewReader(good[:n]))
		var err error
		for err == nil {
			_, err = rd.Next()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d of %d bytes: %v, want io.ErrUnexpectedEOF", n, end, err)
		}
	}
}

func TestReaderCRC(t *testing.T) {
	// 070702 with a correct checksum is accepted: "hello\n" sums to 0x21E.
	b := writeTree(t, []Record{File("f", []byte("hello\n"), 0644)}, PadTo(4))
	copy(b[5:], "2")
	copy(b[6+8*12:], "0000021E")
	recs := readAll(t, b)
	if len(recs) != 1 || string(recs[0].Data) != "hello\n" {
		t.Errorf("got %+v", recs)
	}
}

func TestReaderStopsAtTrailer(t *testing.T) {
	b := writeTree(t, []Record{File("f", []byte("x"), 0644)})
	b = append(b, "garbage after the archive"...)
	rd := NewReader(bytes.NewReader(b))
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := rd.Next(); err != io.EOF {
			t.Fatalf("Next #%d after last entry: %v, want io.EOF", i, err)
		}
	}
}
