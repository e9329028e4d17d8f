package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const legacyManifest = `{"version": 1, "name": "x", "arch": "x86_64",
 "kernel": {"size": 1, "sha256": "1a7ac0c40b10b98353b6f85fa9a0d4f2703287979567e19629d35ad2d777d124"},
 "initrd": {"size": 1, "sha256": "2a7ac0c40b10b98353b6f85fa9a0d4f2703287979567e19629d35ad2d777d124"},
 "files": []}`

func TestIsOurs(t *testing.T) {
	for _, tc := range []struct {
		manifest string
		want     bool
	}{
		{`{"kind": "kitrun-image", "version": 1}`, true},
		{`{"kind": "kitrun-image", "version": 7}`, true}, // a newer kitrun's
		{legacyManifest, true},
		{`{"kind": "other", "version": 1}`, false},
		{`{"name": "app", "short_name": "app", "start_url": "/", "version": 1}`, false},
		{strings.Replace(legacyManifest, `"x86_64"`, `"vax"`, 1), false},
		{strings.Replace(legacyManifest, `"version": 1`, `"version": 2`, 1), false},
		{strings.Replace(legacyManifest, `"files": []`, `"files": {}`, 1), false},
		{strings.Replace(legacyManifest, `"sha256": "1a7a`, `"sha256": "zz7a`, 1), false},
		{`[]`, false},
		{`not json`, false},
	} {
		if got := isOurs([]byte(tc.manifest)); got != tc.want {
			t.Errorf("isOurs(%s) = %v, want %v", tc.manifest, got, tc.want)
		}
	}
}

func TestCheckReplaceableFileSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	os.MkdirAll(dir, 0o755)
	for _, n := range []string{ManifestFile, KernelFile, InitrdFile, CmdlineFile} {
		os.WriteFile(filepath.Join(dir, n), []byte(`{"kind": "kitrun-image"}`), 0o644)
	}
	if err := CheckReplaceable(dir); err != nil {
		t.Fatal(err)
	}
	// A disk image is kitrun's only once its format registered the name.
	os.WriteFile(filepath.Join(dir, "owned-test.qcow2"), nil, 0o644)
	var ne *NotOursError
	if err := CheckReplaceable(dir); !errors.As(err, &ne) || !strings.Contains(err.Error(), "owned-test.qcow2") {
		t.Fatalf("err = %v", err)
	}
	RegisterFile("owned-test.qcow2")
	if err := CheckReplaceable(dir); err != nil {
		t.Fatal(err)
	}
	// A link under a name kitrun writes is still not kitrun's.
	os.Remove(filepath.Join(dir, CmdlineFile))
	os.Symlink("/etc/passwd", filepath.Join(dir, CmdlineFile))
	if err := CheckReplaceable(dir); !errors.As(err, &ne) || !strings.Contains(err.Error(), CmdlineFile) {
		t.Fatalf("err = %v", err)
	}
}

func TestRegisterFileRejectsPaths(t *testing.T) {
	for _, n := range []string{"", "a/b", "..", `a\b`} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterFile(%q) did not panic", n)
				}
			}()
			RegisterFile(n)
		}()
	}
}
