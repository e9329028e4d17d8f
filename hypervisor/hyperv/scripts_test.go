package hyperv

import (
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestScriptsGolden pins the text of every script kitrun sends to
// PowerShell. A change here is a change in what runs on Windows: review
// the diff (go test ./hypervisor/hyperv -run Golden -update rewrites
// them).
func TestScriptsGolden(t *testing.T) {
	name := "kitrun-web-0a1b2c3d"
	cases := []struct {
		file, tmpl string
		data       any
	}{
		{"host", "host", nil},
		{"status", "status", nameData{name}},
		{"receive", "receive", receiveData{Name: name, Directory: `D:\VMs\kitrun's`, File: "disk.vhdx"}},
		{"relay", "relay", relayData{Pipe: PipeName(name, 1), Timeout: 120}},
		{"guest-port", "guest-port", guestPortData{Name: name, Port: 8080, Timeout: 30}},
		{"power-button", "power-button", nameData{name}},
		{"turn-off", "turn-off", nameData{name}},
		{"remove", "remove", removeData{Name: name, Directory: "", Destroyed: false}},
		{"remove-destroyed", "remove", removeData{Name: name, Directory: `C:\kitrun`, Destroyed: true}},
		{"start-vhdx", "start", startData{
			Name: name, VMPath: `C:\ProgramData\Microsoft\Windows\Hyper-V\kitrun`, MemoryBytes: 256 << 20, CPUs: 2,
			Disk:    `C:\ProgramData\Microsoft\Windows\Hyper-V\kitrun\` + name + `\disk.vhdx`,
			Seed:    `C:\ProgramData\Microsoft\Windows\Hyper-V\kitrun\` + name + `\seed.vhdx`,
			Console: PipePath(PipeName(name, 1)), Channel: PipePath(PipeName(name, 2)), Switch: "Default Switch",
		}},
		{"start-iso-nonet-nochannel", "start", startData{
			Name: name, VMPath: `C:\it's here`, MemoryBytes: 512 << 20, CPUs: 1,
			Disk: `C:\it's here\` + name + `\boot.iso`, DVD: true, Console: PipePath(PipeName(name, 1)),
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			got, err := render(c.tmpl, c.data)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, prelude) {
				t.Fatal("the script does not start with the prelude")
			}
			body := strings.TrimPrefix(got, prelude)
			golden(t, filepath.Join("testdata", c.file+".ps1"), body)
		})
	}
	golden(t, filepath.Join("testdata", "prelude.ps1"), prelude)
	golden(t, filepath.Join("testdata", "bootstrap.ps1"), bootstrap+"\n")
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the script rendered now (run with -update after reviewing):\n--- got\n%s", path, got)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "''",
		"plain":            "'plain'",
		"it's":             "'it''s'",
		"$(rm -r C:\\)":    "'$(rm -r C:\\)'",
		"a\u2019b":         "'a\u2019\u2019b'",
		"\u2018x\u201b":    "'\u2018\u2018x\u201b\u201b'",
		"`n\"double\"":     "'`n\"double\"'",
		"''":               "''''''",
		"C:\\kitrun\\vm's": "'C:\\kitrun\\vm''s'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEncodedBootstrap checks -EncodedCommand's encoding: base64 of
// UTF-16LE, short enough for cmd.exe's 8191-character command lines.
func TestEncodedBootstrap(t *testing.T) {
	enc := EncodedBootstrap()
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(b)%2 != 0 {
		t.Fatalf("not base64 of UTF-16: %v", err)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	if got := string(utf16.Decode(u)); got != bootstrap {
		t.Errorf("decoded %q", got)
	}
	if n := len(strings.Join(PwshArgs(), " ")) + len("powershell.exe "); n > 4000 {
		t.Errorf("the command line is %d characters", n)
	}
}
