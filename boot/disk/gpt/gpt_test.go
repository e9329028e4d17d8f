package gpt_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kitrun/kitrun/boot/disk/gpt"
)

func sgdisk(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: sgdisk not installed (run `make deps`)")
		}
		t.Skip("sgdisk not installed (run `make deps`)")
	}
	out, err := exec.Command("sgdisk", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func write(t *testing.T, tb gpt.Table) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := gpt.Write(f, tb); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size() != tb.Size {
		t.Fatalf("file is %d bytes, disk %d", st.Size(), tb.Size)
	}
	return p
}

func TestSgdiskAcceptsTables(t *testing.T) {
	parts, size := gpt.Layout(33<<20+512, 5<<20, 1)
	if parts[0].First != 2048 || size%(1<<20) != 0 {
		t.Fatalf("layout: %+v, size %d", parts, size)
	}
	parts[0].Type, parts[0].Name = gpt.ESP, "EFI system partition"
	parts[1].Type, parts[1].Name = gpt.LinuxData, "données"
	parts[2].Type = gpt.BIOSBoot
	tb := gpt.Table{Size: size, Seed: []byte("content"), Partitions: parts}
	img := write(t, tb)
	v := sgdisk(t, "-v", img)
	if !strings.Contains(v, "No problems found") {
		t.Fatalf("sgdisk -v:\n%s", v)
	}
	p := sgdisk(t, "-p", img)
	for _, want := range []string{"EF00", "EFI system partition", "8300", "données", "EF02",
		"Disk identifier (GUID): " + gpt.NameGUID([]byte("disk 636f6e74656e74")).String()} {
		if !strings.Contains(p, want) {
			t.Errorf("sgdisk -p lacks %q:\n%s", want, p)
		}
	}
	i := sgdisk(t, "-i", "1", img)
	for _, want := range []string{"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "First sector: 2048 ", "Last sector: 69632 "} {
		if !strings.Contains(i, want) {
			t.Errorf("sgdisk -i 1 lacks %q:\n%s", want, i)
		}
	}
	// fdisk reads the protective MBR's view.
	if out, err := exec.Command("sfdisk", "--dump", img).CombinedOutput(); err == nil && !strings.Contains(string(out), "label: gpt") {
		t.Errorf("sfdisk --dump does not see a GPT:\n%s", out)
	}
}

func TestReproducibleAndSeeded(t *testing.T) {
	parts, size := gpt.Layout(1 << 20)
	parts[0].Type = gpt.ESP
	read := func(seed string) []byte {
		b, err := os.ReadFile(write(t, gpt.Table{Size: size, Seed: []byte(seed), Partitions: parts}))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read("x"), read("x"), read("y")
	if !bytes.Equal(a, b) {
		t.Error("same table, different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds, same GUIDs")
	}
	g := gpt.NameGUID([]byte("x"))
	if s := g.String(); s[14] != '5' || !strings.ContainsRune("89AB", rune(s[19])) {
		t.Errorf("NameGUID %s is not an RFC 4122 version-5 GUID", s)
	}
}

func TestBadTables(t *testing.T) {
	parts, size := gpt.Layout(1 << 20)
	parts[0].Type = gpt.ESP
	over := append([]gpt.Partition{}, parts...)
	over = append(over, gpt.Partition{Type: gpt.ESP, First: parts[0].Last, Last: parts[0].Last + 1})
	for _, tc := range []struct {
		tb   gpt.Table
		want string
	}{
		{gpt.Table{Size: size + 1, Partitions: parts}, "multiple of 512"},
		{gpt.Table{Size: size, Partitions: []gpt.Partition{{First: 2048, Last: 2048}}}, "no type GUID"},
		{gpt.Table{Size: size, Partitions: []gpt.Partition{{Type: gpt.ESP, First: 2048, Last: uint64(size)}}}, "has room in"},
		{gpt.Table{Size: size, Partitions: []gpt.Partition{{Type: gpt.ESP, First: 2048, Last: 2048, Name: strings.Repeat("x", 37)}}}, "36"},
		{gpt.Table{Size: size, Partitions: over}, "overlap"},
	} {
		var buf discard
		if err := gpt.Write(buf, tc.tb); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	if _, err := gpt.ParseGUID("C12A7328F81F11D2BA4B00A0C93EC93B"); err == nil {
		t.Error("ParseGUID took a GUID without dashes")
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
