package kitsshd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestStat(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	os.WriteFile(file, []byte("hello\n"), 0o640)
	os.Chmod(file, 0o640)
	big := filepath.Join(dir, "big")
	bigData := bytes.Repeat([]byte("x"), MaxContent+1)
	os.WriteFile(big, bigData, 0o644)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o750)
	os.Chmod(sub, 0o750|os.ModeSticky)
	link := filepath.Join(dir, "link")
	os.Symlink("f.txt", link)

	fi, err := Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("hello\n"))
	st, _ := os.Stat(file)
	want := FileInfo{Path: file, Exists: true, Type: "file", Mode: "0640", UID: os.Getuid(), GID: os.Getgid(),
		Size: 6, MTime: st.ModTime().UnixNano(), SHA256: hex.EncodeToString(sum[:]), Content: []byte("hello\n")}
	if !equal(fi, want) {
		t.Errorf("file: %+v\nwant %+v", fi, want)
	}

	fi, _ = Stat(big)
	bigSum := sha256.Sum256(bigData)
	if fi.Content != nil || fi.Size != MaxContent+1 || fi.SHA256 != hex.EncodeToString(bigSum[:]) {
		t.Errorf("big file: size %d, sha %s, %d content bytes; want no content, only the digest", fi.Size, fi.SHA256, len(fi.Content))
	}

	fi, _ = Stat(sub)
	if fi.Type != "dir" || fi.Mode != "1750" {
		t.Errorf("dir: %+v, want type dir mode 1750", fi)
	}

	fi, _ = Stat(link)
	if fi.Type != "symlink" || fi.Target != "f.txt" || fi.Mode != "0777" || fi.SHA256 != "" {
		t.Errorf("symlink: %+v", fi)
	}

	fi, err = Stat(filepath.Join(dir, "missing"))
	if err != nil || fi.Exists || fi.Type != "" {
		t.Errorf("missing: %+v, %v", fi, err)
	}

	fi, _ = Stat("/dev/null")
	if fi.Type != "other" {
		t.Errorf("/dev/null: %+v, want type other", fi)
	}
}

func TestStatCommandJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("abc"), 0o644)
	var out, errb bytes.Buffer
	if code := statCmd(&out, &errb, []string{p}); code != 0 {
		t.Fatalf("status %d: %s", code, errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"path": p, "exists": true, "type": "file", "mode": "0644", "size": 3.0, "content_base64": "YWJj"} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (in %s)", k, m[k], v, out.String())
		}
	}
	out.Reset()
	if code := statCmd(&out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no argument: status %d, stderr %q", code, errb.String())
	}
}

func equal(a, b FileInfo) bool {
	return reflect.DeepEqual(a, b)
}
