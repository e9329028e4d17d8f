//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Without its keys kitsshd must fail at once and say why, so that the
// service fails visibly.
func TestMissingKeysFail(t *testing.T) {
	dir := t.TempDir()
	err := run(0, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	if err == nil {
		t.Fatal("kitsshd started without keys")
	}
	for _, want := range []string{"host key", "no such file", "SSH on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
