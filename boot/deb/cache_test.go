package deb

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestFindPicksNewest(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		"isolinux_3%3a6.04~git20190206.bf6db5b4+dfsg1-3_all.deb",
		"isolinux_3%3a6.04~git20190206.bf6db5b4+dfsg1-2_all.deb",
		"isolinux-extra_9_all.deb",
		"systemd-boot-efi_252.39-1~deb12u2_amd64.deb",
		"systemd-boot-efi_252.39-1~deb12u2_arm64.deb",
	} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	got, err := Find(dir, "isolinux", "all")
	if err != nil || filepath.Base(got) != "isolinux_3%3a6.04~git20190206.bf6db5b4+dfsg1-3_all.deb" {
		t.Fatalf("Find = %s, %v", got, err)
	}
	got, err = Find(dir, "systemd-boot-efi", "arm64")
	if err != nil || filepath.Base(got) != "systemd-boot-efi_252.39-1~deb12u2_arm64.deb" {
		t.Fatalf("Find = %s, %v", got, err)
	}
	_, err = Find(dir, "systemd-boot-efi", "riscv64")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing package: %v", err)
	}
}

func TestExtractCachedRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.deb")
	os.WriteFile(bad, []byte("not an ar archive"), 0o644)
	if _, err := ExtractCached(context.Background(), bad, filepath.Join(dir, "cache")); err == nil {
		t.Fatal("want an error")
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "cache"))
	if len(ents) != 0 {
		t.Fatalf("left %d entries in the cache", len(ents))
	}
}
