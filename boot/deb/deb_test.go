package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// member is one member of a handmade ar archive. Fields left empty get
// the values dpkg-deb writes; set any of them to corrupt the header.
type member struct {
	name, mtime, uid, gid, mode, size, fmag string
	data                                    []byte
}

// arBytes lays out an ar archive byte by byte, with no validation, so
// tests can write every malformation.
func arBytes(ms ...member) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	for _, m := range ms {
		fmt.Fprintf(&b, "%-16s%-12s%-6s%-6s%-8s%-10s%s", m.name, or(m.mtime, "1700000000"), or(m.uid, "0"), or(m.gid, "0"),
			or(m.mode, "100644"), or(m.size, fmt.Sprint(len(m.data))), or(m.fmag, "`\n"))
		b.Write(m.data)
		if len(m.data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// debBytes is a well-formed package: debian-binary, control.tar.gz and the
// given data member.
func debBytes(data member) []byte {
	return arBytes(
		member{name: "debian-binary", data: []byte("2.0\n")},
		member{name: "control.tar.gz", data: gzBytes(tarBytes(file("./control", "Package: test\n")))},
		data,
	)
}

func file(name, body string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Linkname: body}
}

func dir(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }

func symlink(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}

// tarBytes writes a tar of hs; a regular file's body travels in Linkname.
func tarBytes(hs ...*tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		h := *h
		h.ModTime = time.Unix(1700000000, 0)
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
		}
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return b.Bytes()
}

func gzBytes(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func xzBytes(data []byte) []byte {
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		panic(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func zstBytes(data []byte) []byte {
	w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
	defer w.Close()
	return w.EncodeAll(data, nil)
}

// withDict rewrites the LZMA2 dictionary size of the first block of xz
// data made by xzBytes, with a correct header CRC, as `xz --lzma2=dict=`
// would write it.
func withDict(data []byte, prop byte) []byte {
	out := slices.Clone(data)
	hsize := (int(out[12]) + 1) * 4
	hdr := out[12 : 12+hsize]
	if hdr[1]&0xc0 != 0 || hdr[2] != 0x21 || hdr[3] != 1 {
		panic("unexpected xz block header layout")
	}
	hdr[4] = prop
	crc := crc32.ChecksumIEEE(hdr[:hsize-4])
	hdr[hsize-4], hdr[hsize-3], hdr[hsize-2], hdr[hsize-1] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
	return out
}

func cut(b []byte, n int) []byte { return b[:len(b)-n] }

var smallLimits = limits{data: 1 << 20, entries: 100, window: maxWindowBytes}

// extractBytes runs the extraction on pkg into a fresh directory and
// returns the directory.
func extractBytes(t *testing.T, pkg []byte, lim limits) (string, error) {
	t.Helper()
	out := t.TempDir()
	err := extract(context.Background(), bytes.NewReader(pkg), int64(len(pkg)), out, func(string) bool { return true }, lim)
	return out, err
}

// tree lists the files under dir as "path" or "path/" for directories.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			rel += "/"
		} else if d.Type() != 0 {
			t.Errorf("%s: not a regular file (%v)", rel, d.Type())
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	return out
}

func TestExtractEveryCompression(t *testing.T) {
	data := tarBytes(dir("./"), dir("./usr/"), file("./usr/a", "alpha"), symlink("./usr/b", "a"), file("./usr/lib/c", "gamma"))
	for _, m := range []member{
		{name: "data.tar", data: data},
		{name: "data.tar.gz", data: gzBytes(data)},
		{name: "data.tar.xz", data: xzBytes(data)},
		{name: "data.tar.zst", data: zstBytes(data)},
	} {
		t.Run(m.name, func(t *testing.T) {
			out, err := extractBytes(t, debBytes(m), packageLimits)
			if err != nil {
				t.Fatal(err)
			}
			// The symlink is skipped, never created.
			if got, want := tree(t, out), []string{"usr/", "usr/a", "usr/lib/", "usr/lib/c"}; !slices.Equal(got, want) {
				t.Errorf("extracted %q, want %q", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "usr/lib/c")); string(b) != "gamma" {
				t.Errorf("usr/lib/c holds %q", b)
			}
		})
	}
}

// TestMalformedPackages feeds handmade broken packages to the reader: each
// must be a clear error, no panic, and nothing written outside the
// extraction directory. The first case panicked the ar library used before.
func TestMalformedPackages(t *testing.T) {
	good := tarBytes(file("./usr/a", "alpha"))
	version := member{name: "debian-binary", data: []byte("2.0\n")}
	data := member{name: "data.tar.gz", data: gzBytes(good)}
	xzData := xzBytes(good)
	huge := tarBytes(file("./usr/a", "alpha"))
	// Rewrite the size field of the first header to 8 GiB (octal) and
	// fix its checksum: the body that follows is five bytes.
	hugeHdr := tar.Header{Name: "./usr/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 8<<30 - 1, ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR}
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	tw.WriteHeader(&hugeHdr)
	copy(huge[:512], hb.Bytes()[:512])

	var many []*tar.Header
	for i := range smallLimits.entries + 1 {
		many = append(many, dir(fmt.Sprintf("./d%d/", i)))
	}
	// Three files of 512 KiB: each within the limit, together over it.
	zeros := string(make([]byte, 512<<10))
	bomb := tarBytes(file("./z1", zeros), file("./z2", zeros), file("./z3", zeros))

	tests := []struct {
		name string
		pkg  []byte
		want string
	}{
		{"negative member size", arBytes(version, member{name: "data.tar.gz", size: "-5", data: data.data}),
			`ar member 2 (header at byte 72): size field: "-5        " is not a decimal number padded with spaces`},
		{"member size beyond the end", arBytes(version, member{name: "data.tar.gz", size: "999999", data: data.data}),
			`ar member 2 (header at byte 72): member "data.tar.gz" claims 999999 bytes but only`},
		{"non-numeric size", arBytes(version, member{name: "data.tar.gz", size: "12a", data: data.data}),
			`size field: "12a       " is not a decimal number`},
		{"blank size", arBytes(version, member{name: "data.tar.gz", size: " ", data: data.data}),
			`size field: blank; want a decimal number`},
		{"non-numeric modification time", arBytes(version, member{name: "data.tar.gz", mtime: "yesterday", data: data.data}),
			`modification time field: "yesterday   " is not a decimal number`},
		{"non-octal mode", arBytes(version, member{name: "data.tar.gz", mode: "100844", data: data.data}),
			`mode field: "100844  " is not a octal number`},
		{"bad header terminator", arBytes(version, member{name: "data.tar.gz", fmag: "x\n", data: data.data}),
			"header does not end with the ar terminator"},
		{"truncated header", arBytes(version, data)[:72+30],
			"ar member 2: truncated header at byte 72 (30 bytes left, a header is 60)"},
		{"control byte in a member name", arBytes(version, member{name: "data\x01tar.gz", data: data.data}),
			`member name "data\x01tar.gz" holds a control or non-ASCII byte`},
		{"not an ar archive", []byte("PK\x03\x04 a zip file, say"), "not a Debian package: it does not start with the ar archive magic"},
		{"empty file", nil, "not a Debian package: 0 bytes, too short for an ar archive"},
		{"empty archive", []byte(arMagic), "not a Debian package: the ar archive is empty"},
		{"first member not debian-binary", arBytes(data, version), `the first ar member is "data.tar.gz", want debian-binary`},
		{"format 3", arBytes(member{name: "debian-binary", data: []byte("3.0\n")}, data), `unsupported package format "3.0"`},
		{"oversized debian-binary", arBytes(member{name: "debian-binary", data: bytes.Repeat([]byte("2"), 1000)}, data), "debian-binary is 1000 bytes"},
		{"no data member", arBytes(version, member{name: "control.tar.gz", data: data.data}), "no data.tar member"},
		{"unsupported compression", arBytes(version, member{name: "data.tar.bz2", data: []byte("BZh9")}), "data.tar.bz2: unsupported compression"},
		{"garbage gzip", arBytes(version, member{name: "data.tar.gz", data: []byte("not gzip, but long enough for its header")}), "data.tar.gz: gzip: invalid header"},
		{"gzip too short for its header", arBytes(version, member{name: "data.tar.gz", data: []byte("short")}), "data.tar.gz: gzip header: unexpected EOF"},
		{"garbage xz", arBytes(version, member{name: "data.tar.xz", data: []byte("not xz at all")}), "data.tar.xz: xz stream 1: not xz data"},
		{"garbage zst", arBytes(version, member{name: "data.tar.zst", data: []byte("not zstd at all")}), "data.tar.zst: entry 1: invalid input: magic number mismatch"},
		{"truncated xz", arBytes(version, member{name: "data.tar.xz", data: cut(xzData, 20)}), "data.tar.xz: xz stream 1: xz data end early"},
		{"xz dictionary of 4 GiB", arBytes(version, member{name: "data.tar.xz", data: withDict(xzData, 40)}),
			"LZMA2 dictionary of 4095 MiB is larger than kitrun's limit of 128 MiB"},
		{"xz dictionary of 1.5 GiB", arBytes(version, member{name: "data.tar.xz", data: withDict(xzData, 37)}),
			"LZMA2 dictionary of 1536 MiB is larger than kitrun's limit of 128 MiB"},
		{"truncated tar", arBytes(version, member{name: "data.tar", data: tarBytes(file("./usr/big", strings.Repeat("x", 4096)))[:1024]}),
			`entry "./usr/big": the archive ends inside it (4096 bytes announced); the package is truncated`},
		{"tar entry with a huge size", arBytes(version, member{name: "data.tar.gz", data: gzBytes(huge)}),
			`entry "./usr/a" claims 8589934591 bytes, more than kitrun's limit of 1 MiB`},
		{"garbage tar", arBytes(version, member{name: "data.tar", data: bytes.Repeat([]byte("garbage!"), 128)}),
			"data.tar: entry 1: archive/tar: invalid tar header"},
		{"path escaping with ..", arBytes(version, member{name: "data.tar", data: tarBytes(file("./usr/../../etc/x", "owned"))}),
			`refusing entry "./usr/../../etc/x": path escapes with ".."`},
		{"absolute path", arBytes(version, member{name: "data.tar", data: tarBytes(file("/etc/x", "owned"))}),
			`refusing entry "/etc/x": absolute or backslashed path`},
		{"file under a symlink", arBytes(version, member{name: "data.tar", data: tarBytes(symlink("./etc", "/etc"), file("./etc/x", "owned"))}),
			`refusing entry "./etc/x": it lies under "etc", a link, which kitrun does not create`},
		{"file under a hard link", arBytes(version, member{name: "data.tar", data: tarBytes(
			&tar.Header{Name: "./lib", Typeflag: tar.TypeLink, Linkname: "./usr"}, file("./lib/deep/x", "owned"))}),
			`refusing entry "./lib/deep/x": it lies under "lib", a link`},
		{"a file twice", arBytes(version, member{name: "data.tar", data: tarBytes(file("./a", "1"), file("./a", "2"))}),
			`entry "./a": open`},
		{"too many entries", arBytes(version, member{name: "data.tar.gz", data: gzBytes(tarBytes(many...))}),
			"more than kitrun's limit of 100 entries in a package"},
		{"gzip bomb", arBytes(version, member{name: "data.tar.gz", data: gzBytes(bomb)}),
			"data.tar.gz unpacks to more than kitrun's limit of 1 MiB for a package"},
		{"xz bomb", arBytes(version, member{name: "data.tar.xz", data: xzBytes(bomb)}),
			"data.tar.xz unpacks to more than kitrun's limit of 1 MiB for a package"},
		{"zstd bomb", arBytes(version, member{name: "data.tar.zst", data: zstBytes(bomb)}),
			"data.tar.zst unpacks to more than kitrun's limit of 1 MiB for a package"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			os.Mkdir(out, 0o755)
			err := extract(context.Background(), bytes.NewReader(tt.pkg), int64(len(tt.pkg)), out, func(string) bool { return true }, smallLimits)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v\nwant one containing %s", err, tt.want)
			}
			// Nothing beside the extraction directory, nothing under it
			// but regular files and directories.
			if ents, _ := os.ReadDir(parent); len(ents) != 1 {
				t.Errorf("%d entries beside the extraction directory", len(ents))
			}
			tree(t, out)
		})
	}
}

// TestExtractCachedLeavesNothingOnError checks that a failed extraction
// through the file API leaves no temporary directory in the cache, and that
// the error names the package.
func TestExtractCachedLeavesNothingOnError(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	for name, pkg := range map[string][]byte{
		"negative-size.deb": arBytes(member{name: "debian-binary", data: []byte("2.0\n")}, member{name: "data.tar.gz", size: "-5"}),
		"escape.deb":        debBytes(member{name: "data.tar", data: tarBytes(file("./a", "fine"), file("../b", "owned"))}),
		"truncated.deb":     cut(debBytes(member{name: "data.tar.xz", data: xzBytes(tarBytes(file("./a", strings.Repeat("x", 100000))))}), 30),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pkg, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ExtractCached(context.Background(), p, cache)
		if err == nil || !strings.HasPrefix(err.Error(), p+": ") {
			t.Errorf("%s: got %v, want an error naming the package", name, err)
		}
		if ents, _ := os.ReadDir(cache); len(ents) != 0 {
			t.Errorf("%s: left %d entries in the cache", name, len(ents))
		}
	}
}

func TestLimitedReader(t *testing.T) {
	for _, tc := range []struct {
		size, limit int64
		ok          bool
	}{{0, 0, true}, {10, 10, true}, {11, 10, false}, {1 << 20, 1<<20 - 1, false}, {5, 10, true}} {
		var got bytes.Buffer
		_, err := got.ReadFrom(&limitedReader{r: bytes.NewReader(make([]byte, tc.size)), left: tc.limit})
		if tc.ok != (err == nil) || (tc.ok && int64(got.Len()) != tc.size) {
			t.Errorf("%d bytes, limit %d: read %d, %v", tc.size, tc.limit, got.Len(), err)
		}
	}
}

func TestScanXZ(t *testing.T) {
	data := bytes.Repeat([]byte("kitrun "), 300000)
	one := xzBytes(data)
	// Two streams with padding between them, as xz(1) accepts.
	two := slices.Concat(one, []byte{0, 0, 0, 0}, xzBytes([]byte("tail")))
	for _, tc := range []struct {
		name string
		in   []byte
		want int64
		err  string
	}{
		{"one stream", one, int64(len(data)), ""},
		{"two streams", two, int64(len(data)) + 4, ""},
		{"odd padding", slices.Concat(one, []byte{0, 0}), 0, "2 stray bytes at the end"},
		{"over the limit", one, 0, "decompresses to more than the limit"},
		{"bad dictionary property", withDict(one, 41), 0, "invalid LZMA2 dictionary size property 41"},
	} {
		limit := int64(MaxDataBytes)
		if tc.name == "over the limit" {
			limit = int64(len(data)) - 1
		}
		n, err := scanXZ(bytes.NewReader(tc.in), limit, maxWindowBytes)
		if tc.err == "" && (err != nil || n != tc.want) {
			t.Errorf("%s: %d, %v; want %d", tc.name, n, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v; want %s", tc.name, err, tc.err)
		}
	}
}
